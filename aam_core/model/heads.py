"""Output heads: the target, hidden abundances, per-category output scaling, UniFrac coordinates
and masked nucleotides."""

from __future__ import annotations

import torch
from torch import nn

from aam_core.data.tokens import N_BASES


class TargetHead(nn.Module):
    """Pooled sample vector → ``[B, out_dim]`` (regression values or class logits).

    ``extra`` inputs (the nearest-reference summary) join the normalised pooled vector before the
    first linear layer: normalised together with it, their values would shift with the vector's."""

    def __init__(self, dim: int, out_dim: int, dropout: float = 0.0, extra: int = 0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim + extra, dim), nn.GELU(), nn.Linear(dim, out_dim)
        )

    def forward(self, pooled: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if extra is None:
            return self.net(pooled)
        x = torch.cat([self.net[0](pooled), extra.to(pooled.dtype)], dim=1)
        return self.net[2:](self.net[1](x))


class CountHead(nn.Module):
    """Contextual ASV vectors → predicted log relative abundance per ASV ``[B, S]`` (trained on
    the ASVs whose abundance the sample encoder did not see)."""

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


class UniFracHead(nn.Module):
    """Pooled sample vector → coordinates whose Euclidean distances predict UniFrac.

    No squashing: a distance is ``‖z_i − z_j‖``, free to spread over whatever range the true
    distances cover (a sigmoid on top saturated and collapsed in the system AAM replaces)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled.float())


class NucleotideHead(nn.Module):
    """Contextual patch vectors ``[U, P, D]`` → logits of each base of each patch
    ``[U, P, patch_size, N_BASES]`` (masked-nucleotide pretraining)."""

    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        self.patch_size, self.n_bases = patch_size, N_BASES
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patch_size * N_BASES))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        u, p, _ = patches.shape
        return self.net(patches).view(u, p, self.patch_size, self.n_bases)
