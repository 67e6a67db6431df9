"""ASV vectors of one sample + their abundances → contextual ASV representations ``[B, S, D]``."""

from __future__ import annotations

import torch
from torch import nn

from aam_core.model.layers import TransformerStack


class SampleEncoder(nn.Module):
    """Adds an abundance embedding (log count and relative abundance) and runs a transformer over
    the sample's ASVs with a key-padding mask. Pooling happens in the fusion step."""

    def __init__(self, dim: int, heads: int, layers: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.abundance = nn.Sequential(nn.Linear(2, dim), nn.GELU(), nn.Linear(dim, dim))
        self.transformer = TransformerStack(dim, heads, layers, ff_mult, dropout)

    def forward(self, asv: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        counts = counts.float() * mask
        total = counts.sum(-1, keepdim=True).clamp_min(1.0)
        features = torch.stack([torch.log1p(counts), counts / total * 10.0], dim=-1)
        x = asv + self.abundance(features).to(asv.dtype)
        return self.transformer(x, mask)
