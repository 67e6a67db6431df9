"""BIOM tables whose features are ASV sequences (or hashes resolved through a FASTA file)."""

from __future__ import annotations

import re
from pathlib import Path

import biom
import numpy as np
import skbio.io
from scipy import sparse

from aam_core.errors import DataError

_NUCLEOTIDES = re.compile(r"^[ACGTURYSWKMBDHVN.\-]+$", re.IGNORECASE)


def read_fasta(path: str | Path) -> dict[str, str]:
    """ID → sequence from a FASTA file such as QIIME 2's ``dna-sequences.fasta``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Sequences file not found: {path}")
    try:
        records = skbio.io.read(str(path), format="fasta", constructor=skbio.Sequence)
        return {rec.metadata["id"]: str(rec).upper() for rec in records}
    except Exception as exc:  # scikit-bio raises several kinds for malformed FASTA
        raise DataError(f"{path} is not a readable FASTA file: {exc}") from None


def read_table(path: str | Path) -> biom.Table:
    """Load a BIOM table (HDF5 or JSON); any failure is a one-line :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Table file not found: {path}")
    try:
        table = biom.load_table(str(path))
    except Exception as exc:  # biom raises TypeError/ValueError/KeyError/OSError on bad files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path} is not a readable BIOM table (HDF5 or JSON): {detail}") from None
    if 0 in table.shape:
        raise DataError(f"{path} holds no samples or no features (is it a BIOM table?).")
    return table


def feature_sequences(table: biom.Table, table_path: str | Path, fasta: str | Path | None) -> list[str]:
    """The nucleotide sequence of every feature, in table order."""
    ids = [str(i) for i in table.ids(axis="observation")]
    if fasta is not None:
        lookup = read_fasta(fasta)
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise DataError(
                f"{len(missing)} features of {table_path} have no sequence in {fasta} "
                f"(e.g. '{missing[0]}')."
            )
        return [lookup[i] for i in ids]
    bad = [i for i in ids if not _NUCLEOTIDES.match(i)]
    if bad:
        raise DataError(
            f"Feature IDs of {table_path} are not nucleotide sequences (e.g. '{bad[0][:40]}'); "
            "pass --sequences with the FASTA file that maps them (dna-sequences.fasta)."
        )
    return [i.upper() for i in ids]


def sample_by_feature(table: biom.Table) -> sparse.csr_matrix:
    """Counts as ``float32 [samples, features]`` CSR."""
    return sparse.csr_matrix(table.matrix_data.T.astype(np.float32))
