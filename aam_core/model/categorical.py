"""Categorical metadata codes → one token per column ``[B, K, D]``."""

from __future__ import annotations

import torch
from torch import nn


class CategoricalEmbedder(nn.Module):
    """One embedding table per column; row 0 of each is the reserved unknown category."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim) for n in sizes)
        self.column_embedding = nn.Parameter(torch.zeros(len(sizes), dim))
        for table in self.tables:
            nn.init.normal_(table.weight, std=0.02)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        tokens = [table(codes[:, k]) for k, table in enumerate(self.tables)]
        return torch.stack(tokens, dim=1) + self.column_embedding
