"""Training-time changes to a batch: hidden abundances and masked nucleotides.

Every choice is drawn from a generator seeded by (seed, epoch, batch index, purpose), never from a
global stream, so a resumed run makes exactly the choices the uninterrupted run made.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from aam_core.data.batching import Batch
from aam_core.data.tokens import MASK_TOKEN, PAD

_PURPOSE = {"counts": 2, "nucleotides": 3}


def batch_rng(seed: int, epoch: int, index: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index, _PURPOSE[purpose]])


def hide_abundances(batch: Batch, ratio: float, rng: np.random.Generator) -> Batch:
    """Hide the abundance of ``ratio`` of each sample's ASVs (at least one, where a sample has
    two or more); the count head learns to predict them from the sequences and the rest."""
    if ratio <= 0:
        return batch
    mask = batch.mask.numpy()
    present = mask.sum(axis=1)
    scores = np.where(mask, rng.random(mask.shape), np.inf)
    rank = scores.argsort(axis=1).argsort(axis=1)
    k = np.where(present > 1, np.maximum(1, np.rint(ratio * present)), 0).astype(np.int64)
    hidden = (rank < k[:, None]) & mask
    return attrs.evolve(batch, count_mask=torch.from_numpy(hidden))


def mask_patches(batch: Batch, patch_size: int, ratio: float, rng: np.random.Generator) -> Batch:
    """Replace whole patches (``patch_size`` bases) of each unique ASV by the mask token, at least
    one per ASV; ``nucleotide_target`` holds the hidden bases (A C G T N → 0..4), -1 elsewhere.
    Masking whole patches keeps the patch projection from reading a hidden base's neighbours."""
    tokens = batch.asv_tokens.numpy()
    u, length = tokens.shape
    n_patches = -(-length // patch_size)
    padded = np.zeros((u, n_patches * patch_size), dtype=tokens.dtype)
    padded[:, :length] = tokens
    by_patch = padded.reshape(u, n_patches, patch_size)
    real = (by_patch != PAD).any(axis=2)  # [U, P]
    n_real = real.sum(axis=1)
    k = np.where(n_real > 0, np.maximum(1, np.rint(ratio * n_real)), 0).astype(np.int64)
    scores = np.where(real, rng.random(real.shape), np.inf)
    chosen = (scores.argsort(axis=1).argsort(axis=1) < k[:, None]) & real  # [U, P]
    hidden = np.repeat(chosen, patch_size, axis=1)[:, :length] & (tokens != PAD)
    target = np.where(hidden, tokens.astype(np.int64) - 1, -1)
    masked = np.where(hidden, MASK_TOKEN, tokens).astype(tokens.dtype)
    return attrs.evolve(batch, asv_tokens=torch.from_numpy(masked), nucleotide_target=torch.from_numpy(target))
