"""Each sample's representation on the tree, computed once: how many reads sit under each node.

``node_counts`` turns a ``[samples, features]`` table into ``[nodes, samples]`` counts (sparse:
a sample covers only the nodes above its ASVs). ``UnweightedProfile`` and ``WeightedProfile``
then fold everything that does not depend on the pair into per-sample vectors and split the
remaining nodes into a *dense* part (nodes covered by many samples, a contiguous array for BLAS
or ``cdist``) and a *sparse* part (nodes covered by few, where only pairs that share the node
cost anything). The split point comes from a cost model: a dense column costs the same for every
pair, a sparse one only for the pairs that share it.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import sparse

from aam_core.unifrac.tree import Tree

# Cost (ns) of one (pair, node) step in a dense block (BLAS dgemm for unweighted, SciPy's
# cityblock cdist for weighted) and of one pair expanded from a sparse node (scipy spgemm for
# unweighted, NumPy gathers + a COO sum for weighted), measured on a 2-core AMD EPYC. A node goes
# dense when enough pairs share it that the sparse route would cost more; on oral-age the
# running time is flat within ±5% for thresholds 0.7-1.4× the one these give.
_DENSE_COST = {"unweighted": 0.03, "weighted": 0.45}
_SPARSE_COST = {"unweighted": 5.0, "weighted": 10.0}


@attrs.frozen(eq=False)
class NodeCounts:
    """Reads of every sample under every tree node that has a branch to count.

    ``by_node [nodes, samples]`` (CSR, float64, node-major) keeps only nodes with a positive
    branch length that some sample covers; a node whose reads are always exactly those of its
    one covered child is folded into that child (``length`` holds the summed branch lengths).
    ``totals`` are the samples' reads on the tree and ``tip_depth`` the read-weighted sum of
    their tips' root distances (weighted UniFrac's normaliser).
    """

    by_node: sparse.csr_matrix
    length: np.ndarray
    totals: np.ndarray
    tip_depth: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.by_node.shape[1]


def _ancestors(tree: Tree, tips: np.ndarray) -> sparse.csr_matrix:
    """``[nodes, len(tips)]``: a 1 at every node from each tip (``-1``: none) up to the root,
    the root excluded (its branch never counts)."""
    rows, cols = [], []
    column = np.flatnonzero(tips >= 0)
    current = tips[column]
    while len(current):
        keep = current != tree.root
        column, current = column[keep], current[keep]
        rows.append(current)
        cols.append(column)
        current = tree.parent[current]
    rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
    data = np.ones(len(rows_))
    return sparse.csr_matrix((data, (rows_, cols_)), shape=(len(tree.parent), len(tips)))


def _fold_single_child_chains(tree: Tree, covered: np.ndarray) -> np.ndarray:
    """For each node, the node whose counts it equals: itself, or — when only one of its
    children is covered by any sample — that child's target."""
    target = np.arange(len(tree.parent))
    child_of = tree.parent[:-1]
    covered_children = np.bincount(child_of[covered[:-1]], minlength=len(target))
    single = np.zeros(len(target), dtype=np.int64)
    single[child_of[covered[:-1]]] = np.flatnonzero(covered[:-1])  # right where there is one
    for node in np.flatnonzero((covered_children == 1) & ~tree.is_tip):  # postorder: children first
        target[node] = target[single[node]]
    return target


def node_counts(counts: sparse.csr_matrix, feature_nodes: np.ndarray, tree: Tree) -> NodeCounts:
    """Counts ``[samples, features]`` and each feature's tip (``-1``: dropped) → node counts."""
    table = sparse.csr_matrix(counts, dtype=np.float64)
    table.eliminate_zeros()
    ancestors = _ancestors(tree, feature_nodes)
    length = np.where(np.isnan(tree.length), 0.0, tree.length)
    tip_depth = table @ (length @ ancestors)
    read = (np.diff(table.tocsc().indptr) > 0).astype(np.float64)  # features someone has
    covered = ancestors @ read > 0
    covered[tree.root] = False
    target = _fold_single_child_chains(tree, covered)
    merged = np.bincount(target[covered], weights=length[covered], minlength=len(length))
    keep = np.flatnonzero(covered & (target == np.arange(len(target))) & (merged > 0))
    on_tree = (feature_nodes >= 0).astype(np.float64)
    return NodeCounts(
        by_node=(ancestors[keep] @ table.T).tocsr(),  # only the nodes kept: no copy, less work
        length=merged[keep],
        totals=table @ on_tree,
        tip_depth=tip_depth,
    )


def _dense_threshold(metric: str, n_samples: int, dense_speedup: float) -> float:
    """Samples sharing a node above which its dense column is cheaper than its sparse one."""
    ratio = _DENSE_COST[metric] / (_SPARSE_COST[metric] * dense_speedup)
    return n_samples * np.sqrt(ratio)


def _same_support_groups(coverage: sparse.csr_matrix) -> np.ndarray:
    """A group label per row (node, ≥ 1 sample each); rows share a label exactly when they
    cover the same samples. Rows are hashed by two wrapping sums of random 64-bit integers
    (independent of index order), and rows whose hashes collide are compared outright."""
    n_rows, n_samples = coverage.shape
    rng = np.random.default_rng(0)
    starts = coverage.indptr[:-1]
    hashes = [
        np.add.reduceat(rng.integers(0, 2**63, n_samples, dtype=np.uint64)[coverage.indices], starts)
        for _ in range(2)
    ]
    keys = np.column_stack([np.diff(coverage.indptr).astype(np.uint64), *hashes])
    _, first, label = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    label = label.ravel()
    for row in np.flatnonzero(first[label] != np.arange(n_rows)):
        lead = first[label[row]]
        a = coverage.indices[coverage.indptr[row] : coverage.indptr[row + 1]]
        b = coverage.indices[coverage.indptr[lead] : coverage.indptr[lead + 1]]
        if not np.array_equal(np.sort(a), np.sort(b)):
            label[row] = n_rows + row
    return np.unique(label, return_inverse=True)[1].ravel()


def _complement(coverage: sparse.csr_matrix, chunk_cells: int = 1 << 24) -> sparse.csr_matrix:
    """The samples each row (node) does *not* cover; for nodes most samples cover, that is few."""
    n_rows, n_samples = coverage.shape
    step = max(1, chunk_cells // max(n_samples, 1))
    parts = [sparse.csr_matrix((0, n_samples))]
    for lo in range(0, n_rows, step):
        part = coverage[lo : lo + step]
        block = np.ones(part.shape, dtype=bool)
        block[np.repeat(np.arange(part.shape[0]), np.diff(part.indptr)), part.indices] = False
        parts.append(sparse.csr_matrix(block, dtype=np.float64))
    return sparse.vstack(parts, format="csr")


def _dense_columns(rows: sparse.csr_matrix, scale: np.ndarray | None = None) -> np.ndarray:
    """``[samples, nodes]`` C-contiguous float64 from node-major rows, each scaled."""
    columns = rows.T.toarray(order="C")
    if scale is not None:
        columns *= scale
    return columns


@attrs.frozen(eq=False)
class SparseNodes:
    """The sparse part, both ways: ``by_sample [samples, nodes]`` to take a stripe's rows and
    ``by_node [nodes, samples]`` (sample indices sorted) to find who else holds a node."""

    by_sample: sparse.csr_matrix
    by_node: sparse.csr_matrix
    keys: np.ndarray  # node × samples + sample of each by_node entry: sorted, for searchsorted

    @classmethod
    def of(cls, by_node: sparse.csr_matrix) -> SparseNodes:
        by_node = by_node.tocsr()
        by_node.sort_indices()
        by_sample = by_node.T.tocsr()
        by_sample.sort_indices()
        node = np.repeat(np.arange(by_node.shape[0], dtype=np.int64), np.diff(by_node.indptr))
        return cls(by_sample=by_sample, by_node=by_node, keys=node * by_node.shape[1] + by_node.indices)


@attrs.frozen(eq=False)
class UnweightedProfile:
    """Unweighted UniFrac of a pair ``u, v`` from per-sample data.

    ``shared = constant - offset[u] - offset[v] + dense[u]·dense[v] + Σ_s weight_s z[u,s] z[v,s]``
    is the branch length both samples cover; ``observed[u]`` what ``u`` covers. ``z`` (``sparse``)
    holds coverage for nodes few samples cover and non-coverage for nodes most samples cover
    (``c_u c_v = 1 - c̄_u - c̄_v + c̄_u c̄_v``; the ``1`` and ``c̄`` terms are in ``constant`` and
    ``offset``). ``dense`` is coverage times √length for the nodes many pairs share.
    """

    observed: np.ndarray
    constant: float
    offset: np.ndarray
    dense: np.ndarray
    sparse: SparseNodes
    weight: np.ndarray

    @classmethod
    def build(cls, nodes: NodeCounts, dense_speedup: float = 1.0) -> UnweightedProfile:
        n = nodes.n_samples
        by_node = nodes.by_node
        coverage = sparse.csr_matrix(  # shares the index arrays: no copy
            (np.ones(by_node.nnz), by_node.indices, by_node.indptr), shape=by_node.shape
        )
        observed = nodes.length @ coverage
        k = np.diff(coverage.indptr)
        everyone = k == n
        pairs = (k >= 2) & ~everyone
        coverage, length = coverage[pairs], nodes.length[pairs]
        group = _same_support_groups(coverage)
        coverage = coverage[np.unique(group, return_index=True)[1]]
        length = np.bincount(group, weights=length)
        k = np.diff(coverage.indptr)
        dense = np.minimum(k, n - k) >= _dense_threshold("unweighted", n, dense_speedup)
        most = ~dense & (k > n / 2)
        few = ~dense & ~most
        complement = _complement(coverage[most])
        return cls(
            observed=np.asarray(observed).ravel(),
            constant=float(nodes.length[everyone].sum() + length[most].sum()),
            offset=np.asarray(length[most] @ complement).ravel(),
            dense=_dense_columns(coverage[dense], np.sqrt(length[dense])),
            sparse=SparseNodes.of(sparse.vstack([coverage[few], complement], format="csr")),
            weight=np.concatenate([length[few], length[most]]),
        )


@attrs.frozen(eq=False)
class WeightedProfile:
    """Weighted normalised UniFrac of a pair ``u, v`` from per-sample data.

    With ``x[u, n]`` = branch length of node ``n`` × the fraction of ``u``'s reads under it, the
    distance is ``Σ_n |x[u,n] - x[v,n]| / (depth[u] + depth[v])``. Nodes many samples share are
    columns of ``dense`` (their ``|·|`` summed by ``cdist``); for the others
    ``|a - b| = a + b - 2·min(a, b)``: ``spread[u]`` sums ``x[u, n]`` over them and only pairs that
    share a node pay for its ``min``. ``depth[u]`` is the read-weighted mean root-to-tip distance.
    Nodes on which every sample has the same fraction (such as one above every read) add nothing.
    """

    depth: np.ndarray
    spread: np.ndarray
    dense: np.ndarray
    sparse: SparseNodes

    @classmethod
    def build(cls, nodes: NodeCounts, dense_speedup: float = 1.0) -> WeightedProfile:
        n = nodes.n_samples
        totals = nodes.totals
        by_node = nodes.by_node
        k = np.diff(by_node.indptr)
        share = by_node.data / totals[by_node.indices]  # divided as scikit-bio divides
        constant = np.zeros(len(k), dtype=bool)
        for row in np.flatnonzero(k == n):
            values = share[by_node.indptr[row] : by_node.indptr[row + 1]]
            constant[row] = bool(np.all(values == values[0]))
        share *= np.repeat(nodes.length, k)  # now x
        x = sparse.csr_matrix((share, by_node.indices, by_node.indptr), shape=by_node.shape)
        dense = (k >= _dense_threshold("weighted", n, dense_speedup)) & ~constant
        rest = x[~dense & ~constant]
        return cls(
            depth=np.divide(nodes.tip_depth, totals, out=np.zeros(n), where=totals > 0),
            spread=np.asarray(rest.sum(axis=0)).ravel(),
            dense=_dense_columns(x[dense]),
            sparse=SparseNodes.of(rest),
        )
