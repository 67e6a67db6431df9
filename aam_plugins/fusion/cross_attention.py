"""``cross-attention``: every ASV position attends to the sample's categorical tokens.

Queries are the ASV positions ``asv [B, S, D]``; keys and values are the K metadata tokens
``cat [B, K, D]``. Multi-head attention (``--cross-attn-heads``) with the softmax over the K tokens
computed explicitly, because the weights are the point: ``extras["attention"]`` is
``[B, heads, S, K]``. Then a residual and LayerNorm, ``h = LayerNorm(asv + attn)``, and the model's
``pool(h, mask)``. The cost is ``O(B·S·K·D)`` on top of the projections — K is a handful of columns.

Padding: padded positions (mask False) are zeroed before the projections and after the LayerNorm,
and their attention rows are set to zero, so whatever they held cannot reach the pooled vector or
produce NaN (the softmax runs over the metadata tokens, which are never padded). Because each
unpadded row sums to 1 and each padded row to 0, :meth:`CrossAttentionFusion.summarize` needs no
mask: ``attention/<column>`` is the mean weight on that column over batch, heads and unpadded
positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import nn

from aam_core import hookimpl
from aam_core.config import positive
from aam_core.errors import ConfigError
from aam_core.interfaces import Fusion, FusionOutput, Pool
from aam_core.specs import FusionSpec


@attrs.frozen
class CrossAttentionOptions:
    """Options of the ``cross-attention`` fusion."""

    #: Attention heads; must divide ``--embedding-dim``.
    cross_attn_heads: int = attrs.field(default=8, validator=positive)


class CrossAttentionFusion(Fusion):
    """``pool(LayerNorm(asv + MHA(q=asv, k=v=cat)), mask)``."""

    extras_axes = {"attention": 1}  # [heads, S, K]: axis 1 runs over the sample's ASVs

    def __init__(self, dim: int, n_columns: int, options: CrossAttentionOptions | None = None):
        super().__init__()
        del n_columns  # the attention takes any number of metadata tokens
        heads = (options or CrossAttentionOptions()).cross_attn_heads
        if dim % heads:
            raise ConfigError(f"--cross-attn-heads {heads} must divide --embedding-dim {dim}.")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        b, s, d = asv.shape
        k_tokens = cat.shape[1]
        heads, head_dim = self.heads, d // self.heads
        mask = mask.bool()
        keep = mask.unsqueeze(-1)
        x = asv.masked_fill(~keep, 0.0)

        q = self.query(x).view(b, s, heads, head_dim).transpose(1, 2)  # [B, H, S, d]
        kv = self.key_value(cat).view(b, k_tokens, 2, heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, K, d]
        scores = (q @ k.transpose(-1, -2)) * head_dim**-0.5
        weights = torch.softmax(scores, dim=-1) * mask[:, None, :, None]  # [B, H, S, K]
        attended = (weights.to(v.dtype) @ v).transpose(1, 2).reshape(b, s, d)

        h = self.norm(x + self.out(attended)).masked_fill(~keep, 0.0)
        return FusionOutput(pool(h, mask), {"attention": weights})

    def summarize(
        self, extras: dict[str, torch.Tensor], columns: Sequence[str]
    ) -> dict[str, float]:
        """``attention/<column>``: mean weight on each column over batch, heads, unpadded ASVs."""
        weights = extras["attention"].detach().float()  # padded rows are all zero
        n_rows = (weights.sum(dim=-1) > 0).sum().clamp_min(1)
        per_column = weights.sum(dim=(0, 1, 2)) / n_rows
        return {
            f"attention/{name}": float(value)
            for name, value in zip(columns, per_column, strict=True)
        }


@hookimpl
def aam_fusions():
    """ASV positions attend to the metadata tokens."""
    return [
        FusionSpec(
            name="cross-attention",
            need="position-specific: metadata changes how\n  each ASV is read",
            hint="[--cross-attn-heads 8]\n(attention per ASV and column in TensorBoard)",
            factory=CrossAttentionFusion,
            description="Each ASV attends to the category tokens (residual + LayerNorm), then pool.",
            options=CrossAttentionOptions,
        )
    ]
