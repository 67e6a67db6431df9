"""``gmu``: a residual gated multimodal unit on the pooled sample vector.

The original GMU (Arevalo et al., 2017) mixes two modalities as
``z·tanh(W_s h_seq) + (1 − z)·tanh(W_c h_cat)``. Here that form has two faults:

- the sequence signal is squashed through ``tanh`` before it reaches the heads, so the pooled vector
  the encoder (and the UniFrac head) shaped is bent and bounded by a layer that only exists to add
  metadata;
- ``z`` and ``1 − z`` force a trade: every unit of metadata admitted is a unit of sequence signal
  removed, so a column that helps only a little costs sequence information to use.

The residual form keeps the sequence path an identity and lets the gate decide only how much
metadata to add::

    h_cat = W_p [cat_1; …; cat_K]            (a linear over the K tokens, concatenated)
    z     = sigmoid(W_g [h_seq; h_cat])      per dimension, in (0, 1)
    out   = h_seq + z · tanh(W_c h_cat)

With ``z → 0`` the fusion is a no-op, so an uninformative column cannot hurt. ``extras["gate"]``
holds ``z`` ``[B, D]``; :meth:`GMUFusion.summarize` reports its mean as ``gate_mean``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aam_core import hookimpl
from aam_core.interfaces import Fusion, FusionOutput, Pool
from aam_core.specs import FusionSpec


class GMUFusion(Fusion):
    """``h_seq + sigmoid(W_g [h_seq; h_cat]) · tanh(W_c h_cat)``."""

    extras_axes = {"gate": None}  # [D]: one gate per embedding dimension, no ASV axis

    def __init__(self, dim: int, n_columns: int, options: None = None):
        super().__init__()
        del options  # gmu has none
        self.cat_proj = nn.Linear(n_columns * dim, dim)
        self.gate = nn.Linear(2 * dim, dim)
        self.candidate = nn.Linear(dim, dim)

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        h_seq = pool(asv, mask)
        h_cat = self.cat_proj(cat.flatten(1))
        z = torch.sigmoid(self.gate(torch.cat([h_seq, h_cat], dim=-1)))
        out = h_seq + z * torch.tanh(self.candidate(h_cat))
        return FusionOutput(out, {"gate": z})

    def summarize(
        self, extras: dict[str, torch.Tensor], columns: Sequence[str]
    ) -> dict[str, float]:
        """``gate_mean``: the average gate over batch and dimensions (0 = metadata ignored)."""
        del columns  # one gate for all columns together
        return {"gate_mean": float(extras["gate"].detach().float().mean())}


@hookimpl
def aam_fusions():
    """The residual gated multimodal unit."""
    return [
        FusionSpec(
            name="gmu",
            need="adaptive weighting of metadata vs sequences",
            hint="(gate values in TensorBoard)",
            factory=GMUFusion,
            description="Residual gated multimodal unit: pooled + gate * tanh(metadata projection).",
        )
    ]
