"""``attention``: the attention-pooling weights each sample gives its ASVs.

These are ATTENTION WEIGHTS, NOT ATTRIBUTIONS. They say how much of each contextual ASV vector
goes into the pooled sample vector — after the sample encoder has already mixed the ASVs with one
another — and not how the prediction would change without the ASV. They are non-negative, sum to
1 within a sample and have no units. Written as ``attention.tsv``/``attention.biom`` so they are
never mistaken for attributions; the deletion curves of ``--faithfulness`` measure how well they
rank ASVs anyway.

Fusions that pool (``concat``, ``add``, ``gmu``, ``cross-attention``, and no fusion) have these
weights; ``perceiver`` has no pooling (its latents read the ASVs), so it has none.
"""

from __future__ import annotations

import numpy as np
import torch

from aam_core.attribution.data import ExplainData
from aam_core.attribution.engine import SampleBatch, full_predictions
from aam_core.attribution.results import BatchResult
from aam_core.errors import ConfigError


def check_pooling(data: ExplainData) -> None:
    if data.loaded.model.pool is None:
        raise ConfigError(
            f"--method attention needs attention pooling, and the '{data.loaded.config.model.fusion}' "
            "fusion has none (its latents read the ASVs); use occlusion or integrated-gradients."
        )


def attention(data: ExplainData, sb: SampleBatch) -> BatchResult:
    check_pooling(data)
    pool = data.loaded.model.pool
    seen: dict[str, torch.Tensor] = {}

    def capture(module, args, kwargs, output):  # noqa: ARG001 - forward-hook signature
        values = [*args, *kwargs.values()]
        seen["x"], seen["mask"] = values[0], values[1]

    handle = pool.register_forward_hook(capture, with_kwargs=True)
    try:
        full, classes = full_predictions(data, sb)
    finally:
        handle.remove()
    with torch.no_grad():
        scores = (
            pool.score(seen["x"])
            .squeeze(-1)
            .float()
            .masked_fill(~seen["mask"].bool(), float("-inf"))
        )
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0).cpu().numpy().astype(np.float64)
    values = [weights[b, :n] for b, n in enumerate(sb.slots)]
    nan = np.full(sb.size, np.nan)
    return BatchResult(
        values_model=values,
        values=values,
        prediction_model=full,
        prediction=data.target.decode(full, sb.batch.rows),
        baseline_model=nan,
        baseline=nan,
        predicted_class=data.target.labels(classes),
    )
