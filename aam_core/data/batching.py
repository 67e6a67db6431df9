"""Batches that hold each ASV once, and the machinery that builds them ahead of the step.

Samples in a batch share most of their ASVs, so the ASV encoder runs on the batch's *unique* ASVs
``asv_tokens [U, L]`` and each sample points into them with ``asv_index [B, S]``. S and L are this
batch's own maxima (S capped by ``max_asvs``, keeping the most abundant ASVs); on CUDA S and U are
rounded up to buckets so kernels are reused.

Tokens travel as ``uint8`` (a quarter of the bytes of ``int32`` to the device); ``totals`` is
each sample's full read count, so relative abundances do not depend on ``max_asvs``. Tasks may
add ``count_mask`` (abundances hidden from the model) and ``asv_embeddings`` (precomputed by a
frozen encoder) before the forward pass. ``full_asvs`` and ``full_samples`` say, from the host,
that no real row is padded, so attention can skip its mask (and use fused kernels) without the
device being asked.

A batch is a pure function of its :class:`BatchKey` (epoch, index, rows): a :class:`BatchLoader`
builds them in ``DataLoader`` workers, pinned, ahead of the step; the same key gives the same batch
in any worker, and an epoch resumes from any batch index. :class:`ShardSampler` is each process's
equal share of an epoch's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np
import torch
import torch.utils.data

if TYPE_CHECKING:
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
    #: float [B, G]: exact UniFrac from each sample to every sample of its group — the batches all
    #: processes build at this step, rank-major (G = B with one process or in evaluation).
    distances: torch.Tensor | None = None
    nucleotide_target: torch.Tensor | None = None  # long [U, L]: masked bases (-1 elsewhere)
    full_asvs: bool = False  # every real row of asv_tokens has bases in all its patches' range
    full_samples: bool = False  # every sample fills all S slots (mask all True)
    unknown_branch: bool = False  # also predict every sample with its categories unknown
    #: float [B]: the unknown branch's target when it differs from ``target`` (a per-category
    #: transform: the branch learns the target encoded without the categories)
    unknown_target: torch.Tensor | None = None
    #: float [B, 2, F]: each sample's summary of its nearest reference samples, among those sharing
    #: its known categories and among all (``aam_core.neighbours``), for a model that reads one
    neighbours: torch.Tensor | None = None

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
        "unknown_target",
        "neighbours",
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

    def select(self, start: int, stop: int) -> tuple[Batch, torch.Tensor]:
        """Samples ``start:stop`` as a batch of their own (only the ASVs they use, re-indexed; the
        same S), and the rows of ``asv_tokens`` it kept. ``distances`` is left out: it belongs to
        the loss, which sees the whole batch."""
        index, mask = self.asv_index[start:stop], self.mask[start:stop]
        used = torch.unique(index[mask])
        local = torch.searchsorted(used, index).clamp_max(max(len(used) - 1, 0)).masked_fill(~mask, 0)

        def rows_of(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value.index_select(0, used)

        def samples_of(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value[start:stop]

        part = attrs.evolve(
            self,
            asv_tokens=rows_of(self.asv_tokens),
            asv_index=local,
            counts=samples_of(self.counts),
            mask=mask,
            totals=samples_of(self.totals),
            categories=samples_of(self.categories),
            target=samples_of(self.target),
            sample_ids=self.sample_ids[start:stop],
            rows=self.rows[start:stop],
            features=self.features[used.cpu().numpy()],
            count_mask=samples_of(self.count_mask),
            asv_embeddings=rows_of(self.asv_embeddings),
            distances=None,
            nucleotide_target=rows_of(self.nucleotide_target),
            unknown_target=samples_of(self.unknown_target),
            neighbours=samples_of(self.neighbours),
        )
        return part, used

    @property
    def size(self) -> int:
        return len(self.sample_ids)


def _round_up(value: int, step: int) -> int:
    return max(step, -(-value // step) * step)


def sample_asvs(dataset: Dataset, row: int, max_asvs: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature indices and counts one sample contributes to a batch: its ``max_asvs`` most
    abundant ASVs (ties kept in feature order), in feature order."""
    csr = dataset.counts
    start, end = csr.indptr[row], csr.indptr[row + 1]
    feats, vals = csr.indices[start:end], csr.data[start:end]
    if len(feats) > max_asvs:
        top = np.argsort(-vals, kind="stable")[:max_asvs]
        top.sort()
        feats, vals = feats[top], vals[top]
    return feats, vals


def pass_features(dataset: Dataset, rows: np.ndarray, max_asvs: int) -> np.ndarray:
    """Every dataset feature the batches over ``rows`` hold (sorted, each once)."""
    found = [sample_asvs(dataset, row, max_asvs)[0] for row in rows]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def trimmed_tokens(dataset: Dataset, features: np.ndarray) -> tuple[np.ndarray, bool]:
    """``uint8 [n, L]`` tokens of ``features`` cut to the longest of them, and whether every one
    is that long (no padded row)."""
    tokens = dataset.tokens[features]
    lengths = (tokens != 0).sum(axis=1)
    seq_len = int(lengths.max(initial=1))
    return tokens[:, :seq_len], bool(len(lengths)) and bool((lengths == seq_len).all())


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
    per_sample_features, per_sample_counts = [], []
    totals = np.asarray(dataset.totals[rows], dtype=np.float32)
    for row in rows:
        feats, vals = sample_asvs(dataset, row, max_asvs)
        per_sample_features.append(feats)
        per_sample_counts.append(vals)
    lengths = np.array([len(f) for f in per_sample_features], dtype=np.int64)
    flat = np.concatenate(per_sample_features) if len(rows) else np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(flat, return_inverse=True)
    tokens, full_asvs = trimmed_tokens(dataset, unique)
    seq_len = tokens.shape[1]

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
        full_asvs=full_asvs,
        full_samples=bool(len(rows)) and bool((lengths == n_slots).all()),
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


# -- building batches ahead of the step -----------------------------------------------------------
class ShardSampler(torch.utils.data.Sampler):
    """One process's equal share of ``n`` items per epoch, like ``DistributedSampler``.

    The epoch's order (seeded by ``(seed, epoch)``, identical on every process) is extended by
    wrapping around to a multiple of ``replicas`` and dealt round-robin, so every process gets
    ``ceil(n / replicas)`` items and takes the same number of steps — unequal step counts would
    leave one process waiting forever in a collective. With one replica the share is the order.
    """

    def __init__(self, n: int, *, replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        if not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} is not in 0..{replicas - 1}")
        self.n, self.replicas, self.rank, self.seed, self.shuffle = n, replicas, rank, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shares(self) -> np.ndarray:
        """``[replicas, len(self)]``: every process's items this epoch (row ``rank`` is ours)."""
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.n) if self.shuffle else np.arange(self.n)
        return np.resize(order, (len(self), self.replicas)).T if self.n else np.zeros((self.replicas, 0), dtype=np.int64)

    def __len__(self) -> int:
        return -(-self.n // self.replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shares()[self.rank].tolist())


@attrs.frozen(eq=False)
class BatchKey:
    """What decides one batch; the batch is a pure function of it."""

    epoch: int  # seeds the augmentations (0 in evaluation passes)
    index: int  # 1-based position in its pass
    rows: np.ndarray  # dataset rows of this process's batch
    #: Dataset rows of the batches every process builds at this index, rank-major (``rows`` with
    #: one process): losses over pairs of samples span them.
    group: np.ndarray
    training: bool  # augmentations apply
    offset: int = 0  # where ``rows`` start in ``group``

    def distances(self, source: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``[B, G]``: exact distances from this batch's samples to every sample of its group,
        from ``source(rows) -> [n, n]`` (a tree or a precomputed matrix)."""
        return source(self.group)[self.offset : self.offset + len(self.rows)]


def epoch_keys(rows: np.ndarray, sampler: ShardSampler, epoch: int, batch_size: int, start: int = 0) -> list[BatchKey]:
    """Keys of batch ``start + 1`` onwards of ``epoch``: this process's share of ``rows`` in the
    sampler's order, cut into batches (the last may be short, equally on every process)."""
    sampler.set_epoch(epoch)
    shares = np.asarray(rows, dtype=np.int64)[sampler.shares()]
    n_batches = -(-shares.shape[1] // batch_size)
    keys = []
    for i in range(start, n_batches):
        group = shares[:, i * batch_size : (i + 1) * batch_size]
        rows_i = group[sampler.rank]
        keys.append(
            BatchKey(epoch=epoch, index=i + 1, rows=rows_i, group=group.reshape(-1), training=True, offset=sampler.rank * len(rows_i))
        )
    return keys


def default_workers(device: torch.device) -> int:
    """Batch-building processes when ``--loader-workers`` is not given: on CUDA up to 4 per GPU
    process (the CPUs shared among the processes of this node), on CPU none — there the
    workers would take cores from the step itself."""
    if device.type != "cuda":
        return 0
    import os

    per_process = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(4, per_process - 1))


def _as_is(item: Batch) -> Batch:
    return item


class _Keys(torch.utils.data.Sampler):
    """The keys of the pass being loaded (set before each iteration, read in the main process)."""

    def __init__(self) -> None:
        self.keys: list[BatchKey] = []

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[BatchKey]:
        return iter(self.keys)


class _Built(torch.utils.data.Dataset):
    def __init__(self, build: Callable[[BatchKey], Batch]):
        self.build = build

    def __getitem__(self, key: BatchKey) -> Batch:
        return self.build(key)


class BatchLoader:
    """Batches of any list of keys, built by ``build`` in ``workers`` processes ahead of the step
    (0: in this process) and pinned for an asynchronous copy to the GPU. The workers persist
    across passes; ``build`` must be picklable and must not touch the model or the GPU."""

    def __init__(self, build: Callable[[BatchKey], Batch], *, workers: int = 0, pin_memory: bool = False):
        self._keys = _Keys()
        self._loader = torch.utils.data.DataLoader(
            _Built(build),
            batch_size=None,
            sampler=self._keys,
            num_workers=workers,
            collate_fn=_as_is,
            pin_memory=pin_memory,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    def __call__(self, keys: Sequence[BatchKey]) -> Iterator[Batch]:
        self._keys.keys = list(keys)
        return iter(self._loader) if self._keys.keys else iter(())
