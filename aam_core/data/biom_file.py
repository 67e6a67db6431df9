"""Checks every reader of a BIOM table shares (training's and UniFrac's), with one wording.

Light on purpose (no biom, pandas or scikit-bio import): ``aam unifrac`` reads BIOM HDF5 with
h5py directly and uses these too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import sparse

from aam_core.errors import DataError, library_message


def duplicates(ids: Iterable) -> list[str]:
    """IDs that occur more than once, in order of their second occurrence."""
    seen: set[str] = set()
    return [i for i in map(str, ids) if i in seen or seen.add(i)]


def _ids_of(path: Path, axis: str) -> list[str]:
    """The raw IDs of one axis (``sample``/``observation``) of an HDF5 or JSON BIOM file that
    biom refuses to load; empty when they cannot be read either."""
    import h5py

    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                return [i.decode() if isinstance(i, bytes) else str(i) for i in handle[f"{axis}/ids"][:]]
        with open(path) as handle:
            data = json.load(handle)
        return [str(entry["id"]) for entry in data["columns" if axis == "sample" else "rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def table_error(path: Path, exc: Exception) -> DataError:
    """Why biom could not load ``path``: its whole message, with a duplicated ID it complains of."""
    detail = library_message(exc)
    for axis in ("sample", "observation"):
        if detail.startswith(f"Duplicate {axis} IDs"):
            repeated = duplicates(_ids_of(path, axis))
            if repeated:
                detail = f"{detail} (e.g. '{repeated[0]}'); every ID must be unique."
    return DataError(f"{path} is not a readable BIOM table (HDF5 or JSON): {detail}")


def check_unique(ids: Iterable, axis: str, path: str | Path) -> None:
    """``axis`` IDs (``sample``/``observation``) must be unique, as biom itself demands."""
    repeated = duplicates(ids)
    if repeated:
        raise DataError(
            f"{path} is not a readable BIOM table (HDF5 or JSON): Duplicate {axis} IDs "
            f"(e.g. '{repeated[0]}'); every ID must be unique."
        )


def check_shape(path: str | Path, kind: str, first: str, *, n_samples: int, n_features: int) -> None:
    """A table needs samples and features. ``kind`` and ``first`` are the file's sniffed kind
    and first line: biom reads any text as a (classic) table, so a text file that yields nothing
    was never a table."""
    if kind == "text" and 0 in (n_samples, n_features):
        raise DataError(
            f"{path} is not a readable BIOM table (HDF5 or JSON): it is text starting '{first[:40]}'."
        )
    if n_samples == 0 or n_features == 0:
        what = "no samples" if n_samples == 0 else "no features"
        raise DataError(f"{path} holds {what} ({n_features} features × {n_samples} samples).")


def check_counts(counts: sparse.spmatrix, sample_ids, path: str | Path) -> None:
    """Counts ``[samples, features]`` must be finite and ≥ 0; the error names a sample holding a
    bad value."""
    counts = sparse.csr_matrix(counts)
    bad = ~np.isfinite(counts.data) | (counts.data < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(counts.indptr, first, side="right") - 1)
        raise DataError(
            f"{path} holds {int(bad.sum())} negative or non-finite counts (e.g. "
            f"{counts.data[first]} in sample '{sample_ids[row]}'); counts are numbers of reads, "
            "0 or more."
        )
