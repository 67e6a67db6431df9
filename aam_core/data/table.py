"""BIOM tables whose features are ASV sequences (or hashes resolved through a FASTA file)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import biom
import numpy as np
import skbio.io
from scipy import sparse

from aam_core.data.biom_file import check_counts, check_shape, table_error
from aam_core.data.paths import check_kind, input_file
from aam_core.errors import DataError, library_message

_NUCLEOTIDES = re.compile(r"^[ACGTURYSWKMBDHVN.\-]+$", re.IGNORECASE)
#: What a FASTA record of an ASV may hold: nucleotides and IUPAC codes, no gaps.
_UNALIGNED = re.compile(r"^[ACGTURYSWKMBDHVN]+$", re.IGNORECASE)


def read_fasta(path: str | Path) -> dict[str, str]:
    """ID → sequence from a FASTA file such as QIIME 2's ``dna-sequences.fasta``.

    Every record needs an ID and a nucleotide sequence without gaps; an ID may repeat only with
    the same sequence (FASTA files concatenated from several runs)."""
    path = input_file(path, "Sequences file", "sequences")
    check_kind(path, "sequences")
    try:
        with warnings.catch_warnings():  # its "does not look like a fasta file" precedes the error
            warnings.simplefilter("ignore", skbio.io.FormatIdentificationWarning)
            records = [
                (rec.metadata["id"], str(rec).upper())
                for rec in skbio.io.read(str(path), format="fasta", constructor=skbio.Sequence)
            ]
    except Exception as exc:  # scikit-bio raises several kinds for malformed FASTA
        raise DataError(f"{path} is not a readable FASTA file: {library_message(exc)}") from None
    if not records:
        raise DataError(f"{path} holds no sequences (no '>' records).")
    lookup: dict[str, str] = {}
    for number, (name, sequence) in enumerate(records, start=1):
        if not name:
            raise DataError(f"{path}: record {number} has a '>' line without an ID.")
        if not _UNALIGNED.match(sequence):
            if _NUCLEOTIDES.match(sequence):
                raise DataError(
                    f"{path}: record '{name}' holds gap characters ('-' or '.'), as an alignment "
                    "does; give the unaligned sequences (QIIME 2's dna-sequences.fasta)."
                )
            bad = next(c for c in sequence if not _NUCLEOTIDES.match(c))
            raise DataError(
                f"{path}: record '{name}' is not a nucleotide sequence ('{sequence[:10]}...' holds "
                f"'{bad}'); give the DNA sequences of the table's features."
            )
        if lookup.get(name, sequence) != sequence:
            raise DataError(f"{path}: ID '{name}' appears twice with different sequences.")
        lookup[name] = sequence
    return lookup


def read_table(path: str | Path) -> biom.Table:
    """Load a BIOM table (HDF5 or JSON); any failure is a one-line :class:`DataError`."""
    path = input_file(path, "Table file", "table")
    kind, first = check_kind(path, "table")
    try:
        table = biom.load_table(str(path))
    except Exception as exc:  # biom raises TypeError/ValueError/KeyError/OSError on bad files
        raise table_error(path, exc) from None
    check_shape(path, kind, first, n_samples=table.shape[1], n_features=table.shape[0])
    check_counts(table.matrix_data.T, table.ids(axis="sample"), path)
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
