"""Deletion curves: does removing the ASVs a method ranks first move the prediction more than
removing as many random ASVs?

For each explained sample and each k = 1..``k_max``, the k ASVs with the largest absolute value
(attribution, or attention weight) are removed together — as occlusion removes one: the slot is
switched off and the sample's total kept — and so are k random ASVs (``repeats`` random orders).
A sample with fewer than k ASVs loses all of them. The curves are the mean absolute change of the
prediction in original units (the predicted class's probability for a classifier).

``area_between`` is the mean over k of (top-k curve − random curve), in those units: above 0
when the method's ranking finds ASVs that matter more than chance; ``wins`` is the share of
samples whose own top-k curve lies above their random one on average. A ranking that needs no
model — the most abundant ASVs first — is drawn as a control (``abundance_k_change``,
``abundance_area_between``): a method is only informative where it beats that too
(``area_vs_abundance`` > 0), since removing a sample's dominant ASVs moves any prediction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from aam_core.attribution.data import ExplainData
from aam_core.attribution.engine import full_predictions, masked_scores, sample_batches
from aam_core.attribution.results import Explanation

K_MAX = 20
REPEATS = 3


def _removal_masks(mask_row: torch.Tensor, order: np.ndarray, ks: np.ndarray) -> torch.Tensor:
    """``[len(ks), S]``: the row with the first min(k, n) slots of ``order`` switched off."""
    out = mask_row.repeat(len(ks), 1)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    drop = torch.as_tensor(rank[None, :] < ks[:, None], device=mask_row.device)
    out[:, : len(order)] &= ~drop
    return out


def deletion_curves(
    data: ExplainData,
    explanation: Explanation,
    *,
    k_max: int = K_MAX,
    repeats: int = REPEATS,
    seed: int = 0,
    batch_size: int | None = None,
    advance: Callable[[int], object] | None = None,
) -> dict:
    """The curves, their area between and the share of samples that beat chance (a dict that
    ``faithfulness.json`` holds)."""
    rng = np.random.default_rng(seed)
    ks = np.arange(1, k_max + 1)
    top_sum = np.zeros(k_max)
    random_sum = np.zeros(k_max)
    abundance_sum = np.zeros(k_max)
    wins = 0
    position = 0
    for sb in sample_batches(data, batch_size):
        full, classes = full_predictions(data, sb)
        owners, masks = [], []
        for b, n in enumerate(sb.slots):
            part = explanation.entries(position + b)
            if not np.array_equal(explanation.features[part], sb.features[b]):
                raise ValueError(
                    "The explanation does not match these samples (other data or model?)."
                )
            ranking = np.argsort(-np.abs(explanation.values[part]), kind="stable")
            by_abundance = np.argsort(-sb.counts[b], kind="stable")
            orders = [ranking, by_abundance] + [rng.permutation(n) for _ in range(repeats)]
            for order in orders:
                masks.append(_removal_masks(sb.batch.mask[b], order, ks))
                owners.append(np.full(k_max, b))
        owners = np.concatenate(owners)
        scores = masked_scores(data, sb, owners, torch.cat(masks), classes)
        rows = sb.batch.rows
        change = np.abs(
            data.target.decode(full, rows)[owners] - data.target.decode(scores, rows[owners])
        )
        change = change.reshape(sb.size, 2 + repeats, k_max)
        top = change[:, 0]
        chance = change[:, 2:].mean(axis=1)
        top_sum += top.sum(axis=0)
        abundance_sum += change[:, 1].sum(axis=0)
        random_sum += chance.sum(axis=0)
        wins += int(((top - chance).mean(axis=1) > 0).sum())
        position += sb.size
        if advance is not None:
            advance(sb.size)
    n = max(position, 1)
    top_curve, random_curve, abundance_curve = top_sum / n, random_sum / n, abundance_sum / n
    return {
        "method": explanation.method,
        "units": explanation.units,
        "samples": position,
        "k": ks.tolist(),
        "repeats": repeats,
        "top_k_change": top_curve.tolist(),
        "random_k_change": random_curve.tolist(),
        "abundance_k_change": abundance_curve.tolist(),
        "area_between": float((top_curve - random_curve).mean()),
        "abundance_area_between": float((abundance_curve - random_curve).mean()),
        "area_vs_abundance": float((top_curve - abundance_curve).mean()),
        "wins": wins / n,
    }
