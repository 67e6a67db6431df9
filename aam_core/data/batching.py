"""Batches that hold each ASV once.

Samples in a batch share most of their ASVs, so the ASV encoder runs on the batch's *unique* ASVs
``asv_tokens [U, L]`` and each sample points into them with ``asv_index [B, S]``. S and L are this
batch's own maxima (S capped by ``max_asvs``, keeping the most abundant ASVs); on CUDA S and U are
rounded up to buckets so kernels are reused.

Tokens travel as ``uint8`` (a quarter of the bytes of ``int32`` to the device); ``totals`` is
each sample's full read count, so relative abundances do not depend on ``max_asvs``. Tasks may
add ``count_mask`` (abundances hidden from the model) and ``asv_embeddings`` (precomputed by a
frozen encoder) before the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np
import torch

from aam_core.data.dataset import Dataset

S_BUCKET, U_BUCKET = 16, 64


@attrs.define
class Batch:
    asv_tokens: torch.Tensor  # uint8 [U, L], 0 = padding
    asv_index: torch.Tensor  # long [B, S], index into asv_tokens (0 where mask is False)
    counts: torch.Tensor  # float [B, S], raw counts (0 at padding)
    mask: torch.Tensor  # bool [B, S], True where an ASV is present
    totals: torch.Tensor  # float [B], every read of the sample (not only the kept ASVs)
    categories: torch.Tensor  # long [B, K]
    target: torch.Tensor | None  # float [B] (model units) or long [B] (class index)
    sample_ids: list[str]
    rows: np.ndarray  # positions of these samples in the dataset they came from
    features: np.ndarray  # dataset feature index of each real row of asv_tokens [<= U]
    count_mask: torch.Tensor | None = None  # bool [B, S]: abundances hidden from the model
    asv_embeddings: torch.Tensor | None = None  # [U, D] from a frozen ASV encoder
    distances: torch.Tensor | None = None  # float [B, B]: exact UniFrac between the samples
    nucleotide_target: torch.Tensor | None = None  # long [U, L]: masked bases (-1 elsewhere)

    _TENSORS = (
        "asv_tokens",
        "asv_index",
        "counts",
        "mask",
        "totals",
        "categories",
        "target",
        "count_mask",
        "asv_embeddings",
        "distances",
        "nucleotide_target",
    )

    def to(self, device: torch.device) -> Batch:
        if self.asv_tokens.device == device:
            return self
        moved = {}
        for name in self._TENSORS:
            value = getattr(self, name)
            moved[name] = None if value is None else value.to(device, non_blocking=True)
        return attrs.evolve(self, **moved)

    def pin_memory(self) -> Batch:
        """Page-locked copies, so the copy to a GPU overlaps compute (``DataLoader`` calls it)."""
        pinned = {}
        for name in self._TENSORS:
            value = getattr(self, name)
            pinned[name] = None if value is None else value.pin_memory()
        return attrs.evolve(self, **pinned)

    @property
    def size(self) -> int:
        return len(self.sample_ids)


def _round_up(value: int, step: int) -> int:
    return max(step, -(-value // step) * step)


def collate(
    dataset: Dataset,
    rows: np.ndarray,
    *,
    max_asvs: int,
    categories: np.ndarray,
    target: np.ndarray | None,
    bucket: bool = False,
) -> Batch:
    """Build one batch from dataset rows. ``categories [n, K]`` and ``target [n]`` are encoded."""
    csr = dataset.counts
    per_sample_features, per_sample_counts = [], []
    totals = np.asarray(dataset.totals[rows], dtype=np.float32)
    for row in rows:
        start, end = csr.indptr[row], csr.indptr[row + 1]
        feats, vals = csr.indices[start:end], csr.data[start:end]
        if len(feats) > max_asvs:
            top = np.argsort(-vals, kind="stable")[:max_asvs]
            top.sort()
            feats, vals = feats[top], vals[top]
        per_sample_features.append(feats)
        per_sample_counts.append(vals)
    lengths = np.array([len(f) for f in per_sample_features], dtype=np.int64)
    flat = np.concatenate(per_sample_features) if len(rows) else np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(flat, return_inverse=True)
    tokens = dataset.tokens[unique]
    seq_len = int((tokens != 0).sum(axis=1).max(initial=1))
    tokens = tokens[:, :seq_len]

    n_slots = int(lengths.max(initial=1))
    n_unique = len(unique)
    if bucket:
        n_slots = _round_up(n_slots, S_BUCKET)
        n_unique = _round_up(n_unique, U_BUCKET)
    asv_tokens = np.zeros((n_unique, seq_len), dtype=np.uint8)
    asv_tokens[: len(unique)] = tokens
    asv_index = np.zeros((len(rows), n_slots), dtype=np.int64)
    counts = np.zeros((len(rows), n_slots), dtype=np.float32)
    mask = np.arange(n_slots)[None, :] < lengths[:, None]
    asv_index[mask] = inverse
    counts[mask] = np.concatenate(per_sample_counts) if len(rows) else []

    return Batch(
        asv_tokens=torch.from_numpy(asv_tokens),
        asv_index=torch.from_numpy(asv_index),
        counts=torch.from_numpy(counts),
        mask=torch.from_numpy(mask),
        totals=torch.from_numpy(totals),
        categories=torch.from_numpy(categories[rows]),
        target=None if target is None else torch.as_tensor(target[rows]),
        sample_ids=[str(s) for s in dataset.sample_ids[rows]],
        rows=np.asarray(rows),
        features=unique,
    )


def iter_batches(
    dataset: Dataset,
    rows: np.ndarray,
    batch_size: int,
    *,
    max_asvs: int,
    categories: np.ndarray,
    target: np.ndarray | None,
    shuffle: bool = False,
    generator: np.random.Generator | None = None,
    bucket: bool = False,
) -> Iterator[Batch]:
    """Batches over ``rows`` in order (or shuffled with ``generator``)."""
    rows = np.asarray(rows, dtype=np.int64)
    if shuffle:
        rows = (generator or np.random.default_rng()).permutation(rows)
    for start in range(0, len(rows), batch_size):
        yield collate(
            dataset,
            rows[start : start + batch_size],
            max_asvs=max_asvs,
            categories=categories,
            target=target,
            bucket=bucket,
        )
