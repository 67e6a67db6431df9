"""The UniFrac engine: profiles built once, then any block of the distance matrix on demand.

:class:`UniFracEngine` is what both the full matrix (row stripes of the upper triangle, several
at a time on a thread pool) and the per-batch calculator use, so a batch's distances are the full
matrix's entries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse

from aam_core.errors import ConfigError
from aam_core.unifrac import kernels
from aam_core.unifrac.blas import one_blas_thread
from aam_core.unifrac.profiles import UnweightedProfile, WeightedProfile, node_counts
from aam_core.unifrac.tree import Tree, match_tips

METRICS = ("unweighted", "weighted-normalized")
# The dense part on a GPU is so much cheaper than on the CPU that more nodes belong in it.
_GPU_DENSE_SPEEDUP = 100.0


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"Unknown UniFrac metric '{metric}'. Available: {', '.join(METRICS)}.")
    return metric


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when an NVIDIA GPU and torch with CUDA are present, else ``cpu``.

    The check looks for the NVIDIA driver before importing torch (1.5 s), so ``auto`` on a
    machine without a GPU costs nothing.
    """
    if device == "auto":
        if not os.path.exists("/proc/driver/nvidia/version"):
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], not '{device}'.")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: torch sees no CUDA device; use --device cpu.")
    return device


class UniFracEngine:
    """Exact UniFrac between any samples of one table.

    Built once from the counts (``[samples, features]``), the features' IDs and sequences and a
    tree; :meth:`block` then returns distances for any rows × columns.
    """

    def __init__(
        self,
        counts: sparse.spmatrix | np.ndarray,
        feature_ids: list[str],
        sequences: list[str] | None,
        tree: Tree,
        metric: str,
        *,
        prune_missing: bool = False,
        device: str = "cpu",
        table_label: str = "the table",
    ) -> None:
        self.metric = check_metric(metric)
        counts = sparse.csr_matrix(counts)
        if counts.shape[1] != len(feature_ids):
            raise ValueError(f"counts have {counts.shape[1]} features, feature_ids {len(feature_ids)}")
        if sequences is not None and len(sequences) != len(feature_ids):
            raise ValueError(f"{len(sequences)} sequences for {len(feature_ids)} features")
        feature_nodes = match_tips(
            tree, feature_ids, sequences, prune_missing=prune_missing, table_label=table_label
        )
        nodes = node_counts(counts, feature_nodes, tree)
        self.n_samples = counts.shape[0]
        self.empty_samples = np.flatnonzero(nodes.totals == 0)
        on_gpu = device != "cpu"
        speedup = _GPU_DENSE_SPEEDUP if on_gpu else 1.0
        if self.metric == "unweighted":
            self.profile = UnweightedProfile.build(nodes, speedup)
            self._block = kernels.unweighted_block
        else:
            self.profile = WeightedProfile.build(nodes, speedup)
            self._block = kernels.weighted_block
        dense = self.profile.dense
        on_gpu = on_gpu and dense.shape[1] > 0
        if on_gpu:
            self.dense = kernels.TorchDense(dense, device)
        else:
            self.dense = kernels.NumpyDense(dense, cityblock=self.metric != "unweighted")

    def block(self, rows: np.ndarray | slice, cols: np.ndarray | slice) -> np.ndarray:
        """Distances ``[len(rows), len(cols)]``; a sample's distance to itself is exactly 0."""
        out = self._block(self.profile, self.dense, rows, cols)
        row_ids = np.arange(self.n_samples)[rows]
        col_ids = np.arange(self.n_samples)[cols]
        out[row_ids[:, None] == col_ids[None, :]] = 0.0
        return out

    def pairs(self, rows: np.ndarray) -> np.ndarray:
        """The symmetric ``[B, B]`` matrix of the samples ``rows`` (as the full matrix has them:
        each pair computed with its lower sample index as the row)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_samples):
            raise IndexError(f"sample rows must lie in [0, {self.n_samples})")
        with one_blas_thread():  # small products, often beside a training loop's threads
            out = self.block(rows, rows)
        return np.where(rows[:, None] <= rows[None, :], out, out.T)

    def stripe_rows(self) -> int:
        """Rows per stripe: enough stripes to balance threads, each a few MB of output."""
        return int(np.clip(self.n_samples // 32, 16, 256))

    def stripes(self, workers: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(i0, values)`` for row stripes of the upper triangle, in order: ``values`` holds the
        distances of samples ``i0:i0+r`` to samples ``i0:``. At most ``2·workers`` stripes are in
        memory at once."""
        step = self.stripe_rows()
        starts = list(range(0, self.n_samples, step))
        workers = workers or len(os.sched_getaffinity(0))

        def run(i0: int) -> np.ndarray:
            i1 = min(i0 + step, self.n_samples)
            values = self.block(slice(i0, i1), slice(i0, self.n_samples))
            square = np.triu(values[:, : i1 - i0], 1)
            values[:, : i1 - i0] = square + square.T
            return values

        with one_blas_thread():  # the parallelism is ours: stripes on threads
            if workers <= 1 or len(starts) <= 1:
                for i0 in starts:
                    yield i0, run(i0)
                return
            yield from self._parallel(run, starts, workers)

    @staticmethod
    def _parallel(run, starts: list[int], workers: int) -> Iterator[tuple[int, np.ndarray]]:
        with ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(run, i0) for i0 in starts[: 2 * workers]]
            for index, i0 in enumerate(starts):
                values = pending[index].result()
                pending[index] = None
                if index + 2 * workers < len(starts):
                    pending.append(pool.submit(run, starts[index + 2 * workers]))
                yield i0, values
