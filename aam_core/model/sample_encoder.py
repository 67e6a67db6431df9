"""ASV vectors of one sample + their abundances → contextual ASV representations ``[B, S, D]``."""

from __future__ import annotations

import torch
from torch import nn

from aam_core.model.layers import TransformerStack


class SampleEncoder(nn.Module):
    """Adds an abundance embedding (log count and relative abundance of the sample's full read
    count) and runs a transformer over the sample's ASVs with a key-padding mask. Pooling happens
    in the fusion step.

    ``hidden [B, S]`` marks ASVs whose abundance is withheld (masked-abundance prediction): their
    abundance embedding is replaced by one learned vector, so only the sequence is visible."""

    def __init__(
        self, dim: int, heads: int, layers: int, ff_mult: int = 4, dropout: float = 0.0, maskable: bool = False
    ):
        super().__init__()
        self.abundance = nn.Sequential(nn.Linear(2, dim), nn.GELU(), nn.Linear(dim, dim))
        # Only a model trained with hidden abundances has this vector: a parameter that never
        # gets a gradient would stall DistributedDataParallel.
        self.hidden_abundance = nn.Parameter(torch.zeros(dim)) if maskable else None
        self.transformer = TransformerStack(dim, heads, layers, ff_mult, dropout)

    def forward(
        self,
        asv: torch.Tensor,
        counts: torch.Tensor,
        mask: torch.Tensor,
        totals: torch.Tensor,
        hidden: torch.Tensor | None = None,
        full: bool = False,
    ) -> torch.Tensor:
        """``full``: no sample has padding slots (the transformer then runs without a mask)."""
        counts = counts.float() * mask
        total = totals.float()[:, None].clamp_min(1.0)
        features = torch.stack([torch.log1p(counts), counts / total * 10.0], dim=-1)
        abundance = self.abundance(features)
        if hidden is not None and self.hidden_abundance is not None:
            abundance = torch.where(hidden[..., None], self.hidden_abundance.to(abundance.dtype), abundance)
        return self.transformer(asv + abundance.to(asv.dtype), None if full else mask)
