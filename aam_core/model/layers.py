"""Building blocks: a pre-norm transformer block on ``scaled_dot_product_attention`` and masked
attention pooling. Both are safe on rows that are entirely padding (no NaN).

A stack given no mask attends everywhere: a batch whose host-side flags say no real row is padded
passes ``None``, and SDPA may then pick its fused (flash) kernels, which take no mask. Deciding
that on the device (``mask.all()``) would make the host wait for the GPU at every layer call."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, L]`` key-padding mask → ``[B, 1, 1, L]`` attention mask; all-padding rows attend to
    everything (their output is discarded later) so softmax never sees only -inf. ``None`` (no
    padding) stays ``None``."""
    if mask is None:
        return None
    empty = ~mask.any(dim=-1, keepdim=True)
    return (mask | empty)[:, None, None, :]


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + feed-forward with residuals."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ff(self.norm2(x)))


class TransformerStack(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, ff_mult: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, ff_mult, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``mask [B, L]`` True where a position is real; None when every position is."""
        attn_mask = key_mask(mask)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.norm(x)


class AttentionPooling(nn.Module):
    """A learned score per position, softmax over unpadded positions, weighted sum → ``[B, D]``.

    A row with no valid position pools to zeros."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1).float().masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0).to(x.dtype)
        return torch.einsum("bs,bsd->bd", weights, x)
