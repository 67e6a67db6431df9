"""``scaled-add``: an example third-party AAM fusion.

``out = pool(asv, mask) + Σ_k a_k · cat_k`` with one learned scalar ``a_k`` per categorical column,
started at 1 (so it begins as the built-in ``add``). ``extras["scale"]`` holds the K scalars.

This module is the whole plugin: a :class:`~aam_core.Fusion` subclass, and one ``aam_fusions`` hook
returning its :class:`~aam_core.FusionSpec`. ``pyproject.toml`` names this module under the ``aam``
entry-point group; after ``pip install``, ``aam plugins`` lists it and ``--fusion scaled-add``
selects it.
"""

from __future__ import annotations

import torch
from torch import nn

from aam_core import Fusion, FusionOutput, FusionSpec, hookimpl
from aam_core.interfaces import Pool

__version__ = "0.1.0"


class ScaledAddFusion(Fusion):
    """``pooled + Σ_k a_k · cat_k``."""

    extras_axes = {"scale": None}  # [K]: one scalar per column, no ASV axis

    def __init__(self, dim: int, n_columns: int, options: None = None):
        super().__init__()
        del dim, options  # one scalar per column; no options
        self.scale = nn.Parameter(torch.ones(n_columns))

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        pooled = pool(asv, mask)
        scaled = (self.scale[None, :, None] * cat).sum(dim=1)
        batch = asv.shape[0]
        return FusionOutput(pooled + scaled, {"scale": self.scale.detach().expand(batch, -1)})


@hookimpl
def aam_fusions():
    """Register ``scaled-add``."""
    return [
        FusionSpec(
            name="scaled-add",
            factory=ScaledAddFusion,
            description="Pooled vector plus a learned scalar per column times its category token.",
        )
    ]
