"""Input and output paths: what a file really is, and one-line errors for the usual mix-ups.

Every reader checks its file here first — missing, a directory, empty, or plainly another kind of
file: a metadata TSV given as ``--table``, a BIOM table as ``--metadata``, a QIIME 2 artifact or a
spreadsheet where text is expected, a comma-separated file. Each is a :class:`DataError` naming
the file and what to give instead. Commands that write a file check its path with
:func:`output_file` before any work. Light on purpose: ``aam unifrac`` imports this module without
pandas or scikit-bio.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aam_core.errors import ConfigError, DataError

#: First header cells QIIME 2 accepts as the ID column (compared case-insensitively), and those
#: compared exactly; what a metadata file starts with.
ID_HEADERS = {"id", "sampleid", "sample id", "sample-id", "featureid", "feature id", "feature-id"}
ID_HEADERS_EXACT = {"#SampleID", "#Sample ID", "#OTUID", "#OTU ID", "sample_name"}

#: What each kind of input is called in messages, and the flag that takes it.
EXPECTED = {
    "table": ("a BIOM table", "--table"),
    "metadata": ("a metadata TSV", "--metadata"),
    "sequences": ("a FASTA file", "--sequences"),
    "tree": ("a Newick tree", "--tree"),
    "predictions": ("a predictions TSV (sample_id, actual, predicted)", "--predictions"),
}
#: How each kind of input's errors begin when the file cannot be read as one.
UNREADABLE = {
    "table": "is not a readable BIOM table (HDF5 or JSON)",
    "metadata": "is not a readable metadata TSV",
    "sequences": "is not a readable FASTA file",
    "tree": "is not a Newick tree",
    "predictions": "is not a readable TSV",
}
#: File suffixes suggested when a folder is given for each kind of input.
SUFFIXES = {
    "table": (".biom",),
    "metadata": (".tsv", ".txt"),
    "sequences": (".fasta", ".fa", ".fna"),
    "tree": (".nwk", ".tre", ".tree", ".newick"),
    "predictions": (".tsv",),
    "matrix": (".tsv", ".h5", ".hdf5", ".npy"),
    "checkpoint": (".pt",),
    "samples": (".txt",),
}


def input_file(path: str | os.PathLike, noun: str, kind: str) -> Path:
    """``path`` as a :class:`Path` if it is a file; ``'<noun> not found: <path>'`` if it does not
    exist; for a folder, which files inside it look like the right input."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{noun} not found: {path}")
    candidates = sorted(
        p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES.get(kind, ())
    )
    hint = f"; it holds {', '.join(candidates[:3])}: give one of those" if candidates else ""
    raise DataError(f"{path} is a directory, not a {noun.lower()}{hint}.")


def _first_line(text: str) -> str:
    """The header: the first line that is not blank or a ``#`` comment (``#SampleID`` and
    ``#OTU ID``, tab- or comma-separated, are headers)."""
    for line in text.splitlines():
        if line.strip() and (not line.startswith("#") or _is_id_header(re.split(r"[\t,]", line)[0])):
            return line
    return ""


def _is_id_header(cell: str) -> bool:
    cell = cell.strip().lstrip("\ufeff").strip()
    return cell.lower() in ID_HEADERS or cell in ID_HEADERS_EXACT


def _hdf5_kind(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "observation" in handle and "sample" in handle:
                return "biom-hdf5"
            if "matrix" in handle and "order" in handle:
                return "matrix-hdf5"
    except (OSError, ValueError):
        pass
    return "hdf5"


def sniff(path: str | os.PathLike) -> tuple[str, str]:
    """``(kind, first line)`` of a file from its first bytes. Kinds: ``empty``, ``biom-hdf5``,
    ``matrix-hdf5``, ``hdf5``, ``zip``, ``gzip``, ``binary``, ``biom-json``, ``json``, ``fasta``,
    ``newick``, ``metadata``, ``csv`` and ``text``."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        return "empty", ""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return _hdf5_kind(path), ""
    if head.startswith(b"PK\x03\x04"):
        return "zip", ""
    if head.startswith(b"\x1f\x8b"):
        return "gzip", ""
    if b"\x00" in head:
        return "binary", ""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    first = _first_line(text)
    if text.startswith("{"):
        return ("biom-json" if '"matrix_type"' in text or "Biological Observation Matrix" in text else "json"), first
    if text.startswith(">"):
        return "fasta", first
    if text.startswith("("):
        return "newick", first
    if _is_id_header(first.split("\t")[0]) and not first.startswith("#OTU"):
        return "metadata", first
    if "," in first and "\t" not in first:
        return "csv", first
    return "text", first


def _mixup(path: Path, kind: str, first: str, expected: str) -> str | None:
    """The sentence explaining that ``path`` (sniffed as ``kind``) is not the ``expected`` input,
    or None when it may well be."""
    noun, flag = EXPECTED[expected]
    if kind == "empty":
        return f"{path} {UNREADABLE[expected]}: the file is empty."
    if kind == "zip":
        if expected == "metadata":
            return (
                f"{path} is a ZIP archive (an Excel workbook?), not tab-separated text: save the "
                "sheet as tab-separated text (.tsv) and give that file."
            )
        return (
            f"{path} is a ZIP archive, perhaps a QIIME 2 artifact (.qza), not {noun}: extract it "
            f"with 'qiime tools export --input-path {path.name} --output-path exported' and give "
            "the file it writes."
        )
    if kind == "gzip" and expected != "table":
        return f"{path} is gzip-compressed; decompress it (gunzip) and give the result."
    if kind in ("biom-hdf5", "biom-json") and expected != "table":
        swap = f": did you swap --table and {flag}?" if expected != "predictions" else "."
        return f"{path} is a BIOM table, not {noun}{swap}"
    if kind == "matrix-hdf5":
        return f"{path} is a distance matrix (HDF5), not {noun}."
    if kind in ("hdf5", "binary") and expected != "table":
        return f"{path} is a binary file, not {noun}."
    if kind == "json" and expected == "table":
        return f"{path} {UNREADABLE['table']}: it is JSON without a BIOM 'matrix_type'."
    if kind == "metadata" and expected not in ("metadata", "predictions"):
        header = first.split("\t")[0].strip()
        return (
            f"{path} looks like a metadata TSV (its first column is '{header}'), not {noun}: "
            f"did you swap --metadata and {flag}?"
        )
    if kind == "fasta" and expected != "sequences":
        return f"{path} is a FASTA file, not {noun}: give it as --sequences."
    if kind == "newick" and expected != "tree":
        return f"{path} is a Newick tree, not {noun}: give it as --tree."
    if kind == "csv" and expected in ("table", "metadata", "predictions"):
        fix = {
            "table": "convert it to BIOM, e.g. save it tab-separated and run 'biom convert -i "
            "table.tsv -o table.biom --to-hdf5'",
            "metadata": "metadata must be tab-separated: save it as tab-separated text (.tsv)",
            "predictions": "predictions files are tab-separated (sample_id, actual, predicted)",
        }[expected]
        return f"{path} looks comma-separated (its header is '{first[:60]}'); {fix}."
    return None


def check_kind(path: Path, expected: str) -> tuple[str, str]:
    """Refuse ``path`` when its first bytes show it is plainly not the ``expected`` input;
    returns :func:`sniff`'s ``(kind, first line)``."""
    kind, first = sniff(path)
    problem = _mixup(path, kind, first, expected)
    if problem is not None:
        raise DataError(problem)
    return kind, first


def output_file(path: str | os.PathLike, flag: str, inputs: dict[str, str | os.PathLike | None]) -> Path:
    """Check a file a command will write, before any work: not a directory, not below a file
    (missing folders are created when it is written), and none of the command's ``inputs``
    (``{flag: path}``), which it would overwrite."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; name a file (e.g. {path / 'predictions.tsv'}).")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"{flag} {path}: {above} is a file, not a directory; choose another path.")
    for other, given in inputs.items():
        if given is not None and Path(given).exists() and path.exists() and os.path.samefile(path, given):
            raise ConfigError(
                f"{flag} {path} is the {other} file; writing there would overwrite your input. "
                "Choose another path."
            )
    return path
