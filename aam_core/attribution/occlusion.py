"""``occlusion``: drop one ASV from the sample and see how the prediction moves.

An ASV's attribution is ``prediction(sample) − prediction(sample without that ASV)``, each
decoded to original units first, so it is exact for any target transform, linear or not. In
AAM's batch layout the ASV vectors are shared: a sample with n ASVs costs n extra rows of the
sample encoder and no extra ASV encoding.

The removed ASV's reads stay in the sample's total. The model sees each ASV's count and its
share of the sample's total; keeping the total means every other ASV keeps exactly the
abundance it had, so an ASV is not credited with the shift its removal would cause in the
others' shares (removing reads would make every other ASV look more abundant). It is also how
the model already treats ASVs beyond ``--max-asvs``: not read, yet counted in the total.

The baseline is the same sample with all of its ASVs removed (the model's prediction from the
metadata alone). Single removals do not add up to it: ``prediction − baseline − Σ attributions``
is reported per sample as the part interactions between ASVs carry.

What it is good for: the exact answer to "what if this one microbe were not there?" in the
target's own units, with no gradient (any fusion, any plugin) and no reference input to choose.
Why it is not the default: single removals miss redundancy — several ASVs carrying one signal
each look unimportant alone — and they do not add up (on oral-age the interactions left a mean
of 11.9 years between the baseline and the prediction unexplained). Its ranking was the least
faithful of the three on oral-age's deletion curves: removing its top 20 ASVs moved the
prediction less than removing 20 random ones (``bench/explain.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from aam_core.attribution.data import ExplainData
from aam_core.attribution.engine import SampleBatch, full_predictions, masked_scores
from aam_core.attribution.results import BatchResult

BASELINE = "the sample with all its ASVs removed (metadata only)"


def occlusion(data: ExplainData, sb: SampleBatch) -> BatchResult:
    full, classes = full_predictions(data, sb)
    mask = sb.batch.mask
    n_samples, width = mask.shape
    owners = np.repeat(np.arange(n_samples), sb.slots)
    slot = np.concatenate([np.arange(n) for n in sb.slots])
    dropped = mask[torch.as_tensor(owners, device=mask.device)].clone()
    dropped[
        torch.arange(len(owners), device=mask.device), torch.as_tensor(slot, device=mask.device)
    ] = False
    empty = torch.zeros((n_samples, width), dtype=torch.bool, device=mask.device)
    scores = masked_scores(
        data,
        sb,
        np.concatenate([owners, np.arange(n_samples)]),
        torch.cat([dropped, empty]),
        classes,
    )
    without, baseline = scores[: len(owners)], scores[len(owners) :]
    rows = sb.batch.rows
    target = data.target
    full_units = target.decode(full, rows)
    without_units = target.decode(without, rows[owners])
    split = np.cumsum(sb.slots)[:-1]
    return BatchResult(
        values_model=np.split(full[owners] - without, split),
        values=np.split(full_units[owners] - without_units, split),
        prediction_model=full,
        prediction=full_units,
        baseline_model=baseline,
        baseline=target.decode(baseline, rows),
        predicted_class=target.labels(classes),
    )
