"""``concat`` and ``add``: the simplest fusions, acting on the pooled sample vector.

Both pool the ASV positions first (``pool(asv, mask)`` → ``[B, D]``) and then mix in the K
categorical tokens:

- ``concat``: ``pooled + Linear((K+1)·D → D)([pooled; cat_1; …; cat_K])``. The residual keeps the
  sequence signal intact at initialisation; the linear layer learns what to add from the metadata
  (and may reweight the pooled vector, since it sees it too).
- ``add``: ``pooled + Σ_k cat_k``. No parameters of its own; the category embeddings learn to be
  offsets in the sample space.

Padding never reaches these fusions except through ``pool``, which excludes it by the mask.
"""

from __future__ import annotations

import torch
from torch import nn

from aam_core import hookimpl
from aam_core.interfaces import Fusion, FusionOutput, Pool
from aam_core.specs import FusionSpec


class ConcatFusion(Fusion):
    """``pooled + Linear([pooled; cat_1..cat_K])``."""

    def __init__(self, dim: int, n_columns: int, options: None = None):
        super().__init__()
        del options  # concat has none
        self.proj = nn.Linear((n_columns + 1) * dim, dim)

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        pooled = pool(asv, mask)
        joined = torch.cat([pooled, cat.flatten(1)], dim=-1)
        return FusionOutput(pooled + self.proj(joined), {})


class AddFusion(Fusion):
    """``pooled + Σ_k cat_k``."""

    def __init__(self, dim: int, n_columns: int, options: None = None):
        super().__init__()
        del dim, n_columns, options  # add has no parameters

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        return FusionOutput(pool(asv, mask) + cat.sum(dim=1), {})


@hookimpl
def aam_fusions():
    """The two pooled-vector fusions without gating."""
    return [
        FusionSpec(
            name="concat",
            need="simple metadata (a few study/site labels)",
            factory=ConcatFusion,
            description="Pooled vector plus a linear layer over [pooled; category tokens].",
        ),
        FusionSpec(
            name="add",
            need="an additive offset per category",
            factory=AddFusion,
            description="Pooled vector plus the sum of the category tokens (no parameters).",
        ),
    ]
