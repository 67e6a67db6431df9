"""Evaluation passes shared by every process: each sample counted exactly once, each unique ASV
encoded once.

A pass over some rows cuts them into the batches one process would make, in order, and deals
those batches round-robin to the processes. A process with one batch fewer runs a filler (a
copy of a batch, its output dropped) so that every process calls the model equally often — a
sharded model (FSDP) gathers its weights inside every call. Outputs and their positions are then
gathered from every process and put back in order: the result is what one process computes.

The ASV encoder depends on nothing but the sequence and runs without dropout in evaluation, so a
pass encodes each unique ASV of its rows once (the work split over the processes, longest
sequences together) and its batches gather those vectors instead of encoding per batch.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from aam_core.data.batching import U_BUCKET, Batch, BatchKey, pass_features, trimmed_tokens
from aam_core.data.dataset import Dataset
from aam_core.interfaces import ParallelStrategy
from aam_core.model.aam import AAMModel

#: ASVs encoded together when a pass builds its table.
TABLE_CHUNK = 512


@attrs.frozen(eq=False)
class PassPlan:
    """This process's batches of a pass: ``keys`` in order, ``real[i]`` False for a filler,
    ``starts[i]`` the position of the batch's first row in the pass's rows."""

    keys: list[BatchKey]
    real: list[bool]
    starts: list[int]


def plan_pass(rows: np.ndarray, batch_size: int, strategy: ParallelStrategy) -> PassPlan:
    rows = np.asarray(rows, dtype=np.int64)
    n_batches = -(-len(rows) // batch_size)
    world, rank = strategy.world_size, strategy.global_rank
    mine = list(range(rank, n_batches, world))
    real = [True] * len(mine)
    while n_batches and len(mine) < -(-n_batches // world):
        mine.append(mine[0] if mine else 0)
        real.append(False)
    keys = []
    for j in mine:
        part = rows[j * batch_size : (j + 1) * batch_size]
        keys.append(BatchKey(epoch=0, index=j + 1, rows=part, group=part, training=False))
    return PassPlan(keys=keys, real=real, starts=[j * batch_size for j in mine])


def gather_rows(strategy: ParallelStrategy, local: torch.Tensor) -> torch.Tensor:
    """Every process's ``local [n_p, ...]`` (any ``n_p``) concatenated, rank-major."""
    if strategy.world_size == 1:
        return local
    sizes = strategy.all_gather(torch.tensor([local.shape[0]], device=local.device)).flatten().tolist()
    width = max(sizes)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[: local.shape[0]] = local
    gathered = strategy.all_gather(padded)
    return torch.cat([gathered[r, :n] for r, n in enumerate(sizes)])


def in_order(strategy: ParallelStrategy, positions: list[torch.Tensor], values: list[torch.Tensor], width: int) -> torch.Tensor:
    """Gather per-batch ``values`` whose rows sit at ``positions`` of the pass, in pass order."""
    device = strategy.root_device
    where = gather_rows(strategy, torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long, device=device))
    got = gather_rows(strategy, torch.cat(values) if values else torch.zeros((0, width), device=device))
    return got[torch.argsort(where)]


@attrs.frozen(eq=False)
class AsvTable:
    """The ASV encoder's vector of every unique ASV of a pass (``table [n, D]``, ``lookup``
    from dataset feature to row)."""

    table: torch.Tensor
    lookup: np.ndarray

    @classmethod
    def encode(
        cls, model: AAMModel, dataset: Dataset, rows: np.ndarray, *, max_asvs: int, strategy: ParallelStrategy, bucket: bool
    ) -> AsvTable:
        """Every process encodes an equal share (call it on all of them, under no_grad)."""
        features = pass_features(dataset, rows, max_asvs)
        lengths = (dataset.tokens[features] != 0).sum(axis=1)
        order = features[np.argsort(-lengths, kind="stable")]  # equal lengths share chunks: no mask
        lookup = np.full(dataset.tokens.shape[0], -1, dtype=np.int64)
        lookup[order] = np.arange(len(order))
        device = strategy.root_device
        if not len(order):
            return cls(table=torch.zeros((0, 0), device=device), lookup=lookup)
        world, rank = strategy.world_size, strategy.global_rank
        share = -(-len(order) // world)
        mine = np.resize(order, share * world)[rank * share : (rank + 1) * share]
        vectors = []
        for start in range(0, share, TABLE_CHUNK):
            chunk = mine[start : start + TABLE_CHUNK]
            tokens, full = trimmed_tokens(dataset, chunk)
            if bucket:
                tokens = np.concatenate([tokens, np.zeros((-len(chunk) % U_BUCKET, tokens.shape[1]), dtype=tokens.dtype)])
            encoder = model.asv_encoder  # as the model calls it (a sharding strategy hooks these)
            encoded = encoder.readout_of(encoder.patches(torch.from_numpy(tokens).to(device), full=full))
            vectors.append(encoded[: len(chunk)].float())
        table = strategy.all_gather(torch.cat(vectors)).flatten(0, 1)[: len(order)]
        return cls(table=table, lookup=lookup)

    def attach(self, batch: Batch) -> Batch:
        """``batch`` (on the table's device) with ``asv_embeddings`` from the table."""
        index = torch.as_tensor(self.lookup[batch.features], device=self.table.device)
        embeddings = self.table.new_zeros((batch.asv_tokens.shape[0], self.table.shape[1]))
        embeddings[: len(index)] = self.table.index_select(0, index)
        return attrs.evolve(batch, asv_embeddings=embeddings)
