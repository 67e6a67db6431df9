"""Rarefaction: every sample subsampled without replacement to the same read depth.

Each sample's draw is seeded by its own ID, so a sample rarefies to the same counts in any table
it appears in — training, ``aam baseline`` and ``aam predict`` see identical inputs.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import sparse

from aam_core.errors import DataError


def _sample_seed(sample_id: str, seed: int) -> list[int]:
    return [seed, zlib.crc32(str(sample_id).encode())]


def rarefy(
    counts: sparse.csr_matrix, depth: int, sample_ids: np.ndarray, *, seed: int = 0, source: str = "the table"
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """``(rarefied counts, deep)``: rows with at least ``depth`` reads drawn down to ``depth``;
    ``deep`` marks them. Rows with fewer reads are returned unchanged (callers drop or keep them)."""
    counts = sparse.csr_matrix(counts)
    values = counts.data
    if len(values) and not np.all(np.equal(np.mod(values, 1), 0)):
        raise DataError(f"--rarefy-depth needs whole read counts, but {source} holds fractional values.")
    totals = np.asarray(counts.sum(axis=1)).ravel()
    deep = totals >= depth
    data = counts.data.astype(np.float32).copy()
    for row in np.flatnonzero(deep):
        start, end = counts.indptr[row], counts.indptr[row + 1]
        rng = np.random.default_rng(_sample_seed(sample_ids[row], seed))
        data[start:end] = rng.multivariate_hypergeometric(counts.data[start:end].astype(np.int64), depth)
    out = sparse.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)
    out.eliminate_zeros()
    return out, deep
