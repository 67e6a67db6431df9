"""Output heads: the target, count reconstruction and per-category output scaling."""

from __future__ import annotations

import torch
from torch import nn


class TargetHead(nn.Module):
    """Pooled sample vector → ``[B, out_dim]`` (regression values or class logits)."""

    def __init__(self, dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, out_dim)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class CountHead(nn.Module):
    """Contextual ASV vectors → predicted log relative abundance per ASV ``[B, S]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, asv: torch.Tensor) -> torch.Tensor:
        return self.net(asv).squeeze(-1)


class ConditionalScaling(nn.Module):
    """A learned scale and bias per category of one column, applied to the target output."""

    def __init__(self, n_categories: int, out_dim: int):
        super().__init__()
        self.scale = nn.Embedding(n_categories, out_dim)
        self.bias = nn.Embedding(n_categories, out_dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, output: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return output * self.scale(codes) + self.bias(codes)
