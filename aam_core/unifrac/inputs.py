"""Reading the table for UniFrac: counts, sample IDs, feature IDs and (optionally) sequences.

A BIOM 2.x HDF5 table is read with h5py directly (its ``sample/matrix`` group already is the
``[samples, features]`` CSR UniFrac wants); anything else goes through ``biom.load_table``. The
checks and messages are those of :func:`aam_core.data.table.read_table` (both use
:mod:`aam_core.data.biom_file`), which is not imported here because its module loads scikit-bio
(~3 s) for FASTA parsing.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
from scipy import sparse

from aam_core.data.biom_file import check_counts, check_shape, check_unique, table_error
from aam_core.data.paths import check_kind, input_file
from aam_core.errors import DataError


@attrs.frozen(eq=False)
class Counts:
    """``matrix [samples, features]`` (CSR, float64) with the table's IDs in its order."""

    path: str
    sample_ids: list[str]
    feature_ids: list[str]
    matrix: sparse.csr_matrix


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read_hdf5(path: Path) -> Counts | None:
    """The fast path; ``None`` when the HDF5 file lacks the BIOM 2.x layout."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            matrix = handle["sample/matrix"]
            n_samples, n_features = len(handle["sample/ids"]), len(handle["observation/ids"])
            counts = sparse.csr_matrix(
                (matrix["data"][:].astype(np.float64), matrix["indices"][:], matrix["indptr"][:]),
                shape=(n_samples, n_features),
            )
            return Counts(
                str(path), _strings(handle["sample/ids"][:]), _strings(handle["observation/ids"][:]), counts
            )
    except (KeyError, ValueError, TypeError):
        return None


def read_counts(path: str | Path) -> Counts:
    """A BIOM table (HDF5 or JSON) as counts; any failure is a one-line :class:`DataError`."""
    path = input_file(path, "Table file", "table")
    kind, first = check_kind(path, "table")
    counts = _read_hdf5(path) if kind == "biom-hdf5" else None
    if counts is None:
        import biom

        try:
            table = biom.load_table(str(path))
        except Exception as exc:  # biom raises TypeError/ValueError/KeyError/OSError on bad files
            raise table_error(path, exc) from None
        counts = Counts(
            str(path),
            _strings(table.ids(axis="sample")),
            _strings(table.ids(axis="observation")),
            sparse.csr_matrix(table.matrix_data.T, dtype=np.float64),
        )
    n_samples, n_features = counts.matrix.shape
    check_shape(path, kind, first, n_samples=n_samples, n_features=n_features)
    check_unique(counts.sample_ids, "sample", path)
    check_unique(counts.feature_ids, "observation", path)
    check_counts(counts.matrix, counts.sample_ids, path)
    return counts


def read_sequences(counts: Counts, fasta: str | Path | None) -> list[str] | None:
    """Each feature's sequence from a FASTA file (QIIME 2's ``dna-sequences.fasta``), or ``None``
    without one (tips are then matched to the feature IDs, which may themselves be sequences)."""
    if fasta is None:
        return None
    from aam_core.data.table import read_fasta

    lookup = read_fasta(fasta)
    missing = [f for f in counts.feature_ids if f not in lookup]
    if missing:
        raise DataError(
            f"{len(missing)} features of {counts.path} have no sequence in {fasta} "
            f"(e.g. '{missing[0]}')."
        )
    return [lookup[f] for f in counts.feature_ids]
