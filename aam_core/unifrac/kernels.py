"""UniFrac distances of a block of pairs (rows × columns of the N×N matrix) from the profiles.

The dense part goes through a backend: :class:`NumpyDense` (OpenBLAS ``dgemm`` for unweighted,
SciPy's ``cdist(..., 'cityblock')`` tiled to stay in cache for weighted) or :class:`TorchDense`
(torch on a CUDA device). The sparse part always runs here on the CPU: scipy's sparse product for unweighted, and
for weighted an expansion of exactly the (pair, node) steps whose ``min`` is not zero.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from aam_core.unifrac.profiles import SparseNodes, UnweightedProfile, WeightedProfile

Index = slice | np.ndarray

# cdist walks every (row, column) pair over all nodes of a chunk; keeping a tile of the columns'
# values in cache (columns × nodes) makes it ~1.5× faster than one call over everything.
_NODE_CHUNK = 64
_COLUMN_TILE = 512
# Upper bound on (pair, node) steps expanded at once by the weighted sparse part (memory).
_MAX_STEPS = 1 << 18


class NumpyDense:
    """The dense part on the CPU."""

    def __init__(self, dense: np.ndarray, *, cityblock: bool) -> None:
        self.dense = dense
        # cityblock (weighted) reads the columns in contiguous chunks; gram (unweighted) does not.
        self.chunks = [
            np.ascontiguousarray(dense[:, lo : lo + _NODE_CHUNK])
            for lo in range(0, dense.shape[1] if cityblock else 0, _NODE_CHUNK)
        ]

    def gram(self, rows: Index, cols: Index) -> np.ndarray:
        return self.dense[rows] @ self.dense[cols].T

    def cityblock(self, rows: Index, cols: Index) -> np.ndarray:
        from scipy.spatial.distance import cdist  # 0.1 s to import: only weighted needs it

        n_rows = len(self.dense[rows])
        col_ids = np.arange(len(self.dense))[cols]
        out = np.zeros((n_rows, len(col_ids)))
        for lo in range(0, len(col_ids), _COLUMN_TILE):
            tile = col_ids[lo : lo + _COLUMN_TILE]
            tile_index = slice(tile[0], tile[-1] + 1) if _is_run(tile) else tile
            target = out[:, lo : lo + len(tile)]
            for chunk in self.chunks:
                target += cdist(chunk[rows], chunk[tile_index], "cityblock")
        return out


def _is_run(ids: np.ndarray) -> bool:
    return len(ids) > 0 and int(ids[-1]) - int(ids[0]) == len(ids) - 1


class TorchDense:
    """The dense part on a torch device (a GPU): one matrix product or ``cdist`` per block."""

    def __init__(self, dense: np.ndarray, device: str) -> None:
        import torch

        self.torch = torch
        self.dense = torch.from_numpy(dense).to(device)

    def _take(self, index: Index):
        if isinstance(index, slice):
            return self.dense[index]
        return self.dense[self.torch.as_tensor(index, device=self.dense.device)]

    def gram(self, rows: Index, cols: Index) -> np.ndarray:
        return (self._take(rows) @ self._take(cols).T).cpu().numpy()

    def cityblock(self, rows: Index, cols: Index) -> np.ndarray:
        return self.torch.cdist(self._take(rows), self._take(cols), p=1.0).cpu().numpy()


def unweighted_block(profile: UnweightedProfile, dense, rows: Index, cols: Index) -> np.ndarray:
    """Unweighted UniFrac of ``rows × cols``: unique over observed branch length."""
    shared = dense.gram(rows, cols)
    shared += profile.constant
    shared -= profile.offset[rows][:, None]
    shared -= profile.offset[cols][None, :]
    nodes = profile.sparse.by_sample
    if nodes.nnz:
        left = nodes[rows]
        left.data = profile.weight[left.indices]
        shared += (left @ nodes[cols].T).toarray()
    total = profile.observed[rows][:, None] + profile.observed[cols][None, :]
    unique = np.maximum(total - 2.0 * shared, 0.0)
    observed = total - shared
    return np.divide(unique, observed, out=np.zeros_like(unique), where=observed > 0)


def _holders(nodes: SparseNodes, wanted: np.ndarray, cols: Index):
    """For each node in ``wanted``: where its holders among ``cols`` start and stop in the
    returned ``position``/``value`` arrays (``position``: the holder's place in ``cols``)."""
    if isinstance(cols, slice):
        n = nodes.by_sample.shape[0]
        c0, c1, _ = cols.indices(n)
        keys = nodes.keys
        start = np.searchsorted(keys, wanted * n + c0)
        stop = np.searchsorted(keys, wanted * n + c1)
        return start, stop, nodes.by_node.indices - c0, nodes.by_node.data
    local = nodes.by_sample[cols].T.tocsr()  # node → positions in cols that hold it
    return local.indptr[wanted], local.indptr[wanted + 1], local.indices, local.data


def _sum_of_min(nodes: SparseNodes, rows: Index, cols: Index, n_cols: int) -> np.ndarray:
    """``out[i, j] = Σ_n min(x[rows[i], n], x[cols[j], n])`` over the sparse nodes (x ≥ 0),
    expanding only the (pair, node) steps where both samples hold the node."""
    left = nodes.by_sample[rows]
    out = np.zeros((left.shape[0], n_cols))
    if not left.nnz:
        return out
    start, stop, position, value = _holders(nodes, left.indices.astype(np.int64), cols)
    steps = stop - start
    entry_rows = np.repeat(np.arange(left.shape[0], dtype=np.int32), np.diff(left.indptr))
    bounds = np.searchsorted(np.cumsum(steps), np.arange(_MAX_STEPS, steps.sum(), _MAX_STEPS))
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(steps)], strict=True):
        count = steps[lo:hi]
        total = int(count.sum())
        if total == 0:
            continue
        offset = start[lo:hi] - (np.cumsum(count) - count)
        at = np.repeat(offset, count) + np.arange(total)
        mins = np.minimum(np.repeat(left.data[lo:hi], count), value[at])
        pairs = (np.repeat(entry_rows[lo:hi], count), position[at])
        out += sparse.coo_matrix((mins, pairs), shape=out.shape).toarray()
    return out


def weighted_block(profile: WeightedProfile, dense, rows: Index, cols: Index) -> np.ndarray:
    """Weighted normalised UniFrac of ``rows × cols``."""
    moved = dense.cityblock(rows, cols)
    moved += profile.spread[rows][:, None]
    moved += profile.spread[cols][None, :]
    moved -= 2.0 * _sum_of_min(profile.sparse, rows, cols, moved.shape[1])
    moved = np.maximum(moved, 0.0)
    norm = profile.depth[rows][:, None] + profile.depth[cols][None, :]
    return np.divide(moved, norm, out=np.zeros_like(moved), where=norm > 0)
