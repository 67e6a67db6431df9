"""Nucleotides → one vector per unique ASV.

Bases are embedded, then grouped into non-overlapping patches of ``patch_size`` bases (a k-mer
token, like a ViT patch: concatenated base embeddings through one linear layer). A transformer
runs over the patch tokens with learned positions, and a positional readout (the patch tokens,
padding zeroed, flattened through one linear layer) gives ``[U, D]``.

The readout is positional rather than an attention pool because 16S ASVs of one region are
nearly identical: averaging their patch tokens gave vectors with cosine similarity ≈ 0.97 at
initialisation and learning stalled; keeping where a difference sits gives ≈ 0.80.

No dropout here: each unique sequence is seen many times an epoch and overfitting happens at the
sample level, where the sample encoder and head apply ``--dropout``. Patching divides the
sequence length the transformer sees by ``patch_size``; with attention cost quadratic in that
length this is the main reason AAM trains fast on CPUs (see bench/).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aam_core.data.tokens import PAD, VOCAB_SIZE
from aam_core.model.layers import TransformerStack


class ASVEncoder(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        layers: int,
        max_bp: int,
        patch_size: int = 4,
        ff_mult: int = 4,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.base_embedding = nn.Embedding(VOCAB_SIZE, dim, padding_idx=PAD)
        self.patch = nn.Linear(patch_size * dim, dim) if patch_size > 1 else nn.Identity()
        self.positions = nn.Parameter(torch.zeros(math.ceil(max_bp / patch_size), dim))
        nn.init.normal_(self.positions, std=0.02)
        self.transformer = TransformerStack(dim, heads, layers, ff_mult, dropout=0.0)
        self.readout = nn.Linear(self.positions.shape[0] * dim, dim)

    def tokens(self, asv_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[U, L]`` bases → patch tokens ``[U, P, D]`` (before the transformer) and mask ``[U, P]``."""
        asv_tokens = asv_tokens.long()  # batches carry uint8
        u, length = asv_tokens.shape
        p = self.patch_size
        pad = (-length) % p
        if pad:
            asv_tokens = F.pad(asv_tokens, (0, pad), value=PAD)
        n_patches = asv_tokens.shape[1] // p
        if n_patches > self.positions.shape[0]:
            raise ValueError(
                f"ASV of {asv_tokens.shape[1]} bases exceeds the model's max_bp "
                f"({self.positions.shape[0] * p})."
            )
        x = self.base_embedding(asv_tokens).reshape(u, n_patches, -1)
        mask = (asv_tokens != PAD).reshape(u, n_patches, p).any(-1)
        return self.patch(x) + self.positions[:n_patches], mask

    def patches(self, asv_tokens: torch.Tensor, full: bool = False) -> torch.Tensor:
        """``[U, L]`` → contextual patch vectors ``[U, P, D]`` (zero at padding patches).
        ``full``: every real row spans all P patches, so attention needs no mask (rows of pure
        padding then attend to padding, and are zeroed like any padding)."""
        x, mask = self.tokens(asv_tokens)
        return self.transformer(x, None if full else mask) * mask[..., None]

    def readout_of(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch vectors ``[U, P, D]`` → one vector per ASV ``[U, D]``."""
        h = F.pad(patches, (0, 0, 0, self.positions.shape[0] - patches.shape[1]))
        return self.readout(h.flatten(1))

    def forward(self, asv_tokens: torch.Tensor, full: bool = False) -> torch.Tensor:
        """``[U, L]`` → ``[U, D]``."""
        return self.readout_of(self.patches(asv_tokens, full))
