"""Bad input to every command: exit status 2, one line ``aam: error: ...`` naming the file, the
sample or the flag, no traceback, and nothing damaged or created.

A corpus of broken and mixed-up files is written once per module (:func:`corpus`); each case runs
one command with one bad input against two outputs — one already holding a previous result (with
``--force`` for the commands that take it) and one that does not exist yet — and checks that the
first is byte-for-byte unchanged, the second was never created, and no input file was touched.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import attrs
import h5py
import numpy as np
import pytest
from conftest import TINY_MODEL, _as_flags, _write_biom, _write_tsv, random_newick, write_tiny_data
from test_cli import assert_one_line_error, snapshot, write_previous_run

N_SAMPLES = 30
TINY = _as_flags(TINY_MODEL)
#: Old content of an output file that a failed command must leave as it was.
PREVIOUS_FILE = b"sample_id\tpredicted\nA\t1.0\n"


# -- the corpus ----------------------------------------------------------------------------------
def _hdf5_ids(path: Path, axis: str, ids: list[str]) -> None:
    """Overwrite the IDs of one axis inside an HDF5 BIOM file (biom itself refuses to write
    duplicates)."""
    with h5py.File(path, "a") as handle:
        handle[f"{axis}/ids"][...] = np.array(ids, dtype=object)


def _lsmat(path: Path, ids: list[str], matrix: np.ndarray) -> Path:
    rows = ["\t" + "\t".join(ids)]
    rows += [label + "\t" + "\t".join(repr(float(v)) for v in row) for label, row in zip(ids, matrix, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records))
    return path


def _metadata(path: Path, data, column: list[str], header: str = "sample-id") -> Path:
    """The tiny metadata with ``age`` replaced by ``column``."""
    rows = [[s, a, c] for s, a, c in zip(data.sample_ids, column, data.site, strict=True)]
    return _write_tsv(path, [header, "age", "site"], rows)


def _previous_predictions(path: Path, ids: list[str], shift: float = 0.0) -> Path:
    rows = [[s, float(i), float(i) + shift + 0.5] for i, s in enumerate(ids)]
    return _write_tsv(path, ["sample_id", "actual", "predicted"], rows)


def _write_folder(folder: Path, contents: dict[str, bytes]) -> Path:
    for name, content in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def _write_tables(c: Path, data, files: dict[str, Path]) -> None:
    counts, seqs, ids = data.counts, data.sequences, data.sample_ids
    hashes = [f"{i:032x}" for i in range(len(seqs))]
    files["hashed"] = _write_biom(c / "hashed.biom", counts, hashes, ids)
    files["table_json"] = _write_biom(c / "table.json", counts, seqs, ids, fmt="json")
    files["empty_file"] = c / "empty.biom"
    files["empty_file"].write_bytes(b"")
    files["folder"] = c / "folder"
    (c / "folder").mkdir()
    _write_biom(c / "folder" / "inside.biom", counts, seqs, ids)
    whole = data.table.read_bytes()
    (c / "truncated.biom").write_bytes(whole[: len(whole) // 2])
    files["truncated"] = c / "truncated.biom"
    (c / "random.biom").write_bytes(np.random.default_rng(1).bytes(3000))
    files["random"] = c / "random.biom"
    (c / "hello.biom").write_text("hello world\n")
    files["hello"] = c / "hello.biom"
    text = files["table_json"].read_text()
    (c / "cut.json").write_text(text[: len(text) // 2])
    files["cut_json"] = c / "cut.json"
    (c / "other.json").write_text('{"name": "not a table"}\n')
    files["other_json"] = c / "other.json"
    files["no_samples"] = _write_biom(c / "no-samples.biom", np.zeros((0, 4)), seqs[:4], [])
    files["no_features"] = _write_biom(c / "no-features.biom", np.zeros((3, 0)), [], ids[:3])
    files["dup_samples"] = _write_biom(c / "dup-samples.biom", counts, seqs, ids)
    _hdf5_ids(files["dup_samples"], "sample", [*ids[:-1], ids[0]])
    files["dup_features"] = _write_biom(c / "dup-features.biom", counts, seqs, ids)
    _hdf5_ids(files["dup_features"], "observation", [*seqs[:-1], seqs[0]])
    negative = counts.astype(float)
    negative[3, np.flatnonzero(counts[3])[0]] = -5
    files["negative"] = _write_biom(c / "negative.biom", negative, seqs, ids)
    nan = counts.astype(float)
    nan[4, np.flatnonzero(counts[4])[0]] = np.nan
    files["nan_counts"] = _write_biom(c / "nan-counts.biom", nan, seqs, ids)
    files["fractional"] = _write_biom(c / "fractional.biom", counts / 7.0, seqs, ids)
    files["all_empty"] = _write_biom(c / "all-empty.biom", np.zeros_like(counts), seqs, ids)
    files["spaced_ids"] = _write_biom(c / "spaced-ids.biom", counts, seqs, [f"{s} " for s in ids])
    files["lower_ids"] = _write_biom(c / "lower-ids.biom", counts, seqs, [s.lower() for s in ids])
    with zipfile.ZipFile(c / "table.qza", "w") as archive:
        archive.writestr("uuid/data/feature-table.biom", whole)
    files["qza"] = c / "table.qza"
    files["csv_table"] = c / "table.csv"
    files["csv_table"].write_text(
        "#OTU ID," + ",".join(ids) + "\n"
        + "".join(f"{s}," + ",".join(map(str, row)) + "\n" for s, row in zip(seqs, counts.T, strict=True))
    )


def _write_metadata(c: Path, data, files: dict[str, Path]) -> None:
    ages = [str(a) for a in data.age]
    files["csv"] = c / "metadata.csv"
    files["csv"].write_text(data.metadata.read_text().replace("\t", ","))
    with zipfile.ZipFile(c / "metadata.xlsx", "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    files["xlsx"] = c / "metadata.xlsx"
    files["no_id"] = _write_tsv(
        c / "no-id.tsv", ["age", "site"], [[a, s] for a, s in zip(ages, data.site, strict=True)]
    )
    files["dup_ids"] = _metadata(c / "dup-ids.tsv", data, ages)
    files["dup_ids"].write_text(
        files["dup_ids"].read_text() + f"{data.sample_ids[2]}\t40\tgum\n"
    )
    files["dup_columns"] = _write_tsv(
        c / "dup-columns.tsv",
        ["sample-id", "age", "age"],
        [[s, a, a] for s, a in zip(data.sample_ids, ages, strict=True)],
    )
    files["header_only"] = _write_tsv(c / "header-only.tsv", ["sample-id", "age", "site"], [])
    files["latin1"] = _metadata(c / "latin1.tsv", data, ages)
    files["latin1"].write_bytes(files["latin1"].read_text().replace("gum", "caf\xe9").encode("latin-1"))
    files["bad_type"] = _write_tsv(
        c / "bad-type.tsv",
        ["sample-id", "age"],
        [[s, a] for s, a in zip(data.sample_ids, ages, strict=True)],
        types=["numbr"],
    )
    typed = [*ages[:-1], "abc"]
    files["type_clash"] = _write_tsv(
        c / "type-clash.tsv",
        ["sample-id", "age"],
        [[s, a] for s, a in zip(data.sample_ids, typed, strict=True)],
        types=["numeric"],
    )
    files["ragged"] = _metadata(c / "ragged.tsv", data, ages)
    files["ragged"].write_text(files["ragged"].read_text() + "S999\t30\tgum\textra\n")
    files["empty_target"] = _metadata(c / "empty-target.tsv", data, [""] * N_SAMPLES)
    files["years"] = _metadata(c / "years.tsv", data, [f"{int(a)} years" for a in data.age])
    markers = ["NA", "n/a", "missing"]
    files["na_target"] = _metadata(c / "na-target.tsv", data, [markers[i % 3] for i in range(N_SAMPLES)])
    files["one_class"] = _metadata(c / "one-class.tsv", data, ages)
    files["one_class"].write_text(
        files["one_class"].read_text().replace("cheek", "gum").replace("tongue", "gum")
    )
    files["no_overlap"] = _write_tsv(
        c / "no-overlap.tsv", ["sample-id", "age"], [[f"X{i}", i] for i in range(5)]
    )


def _write_fastas(c: Path, data, files: dict[str, Path]) -> None:
    hashes = [f"{i:032x}" for i in range(len(data.sequences))]
    records = list(zip(hashes, data.sequences, strict=True))
    files["fasta"] = _fasta(c / "dna-sequences.fasta", records)
    files["protein"] = _fasta(c / "protein.fasta", [(hashes[0], "MKVLAAGIVGLLLAQW"), *records[1:]])
    files["empty_record"] = c / "empty-record.fasta"
    files["empty_record"].write_text(f">{hashes[0]}\n" + "".join(f">{h}\n{s}\n" for h, s in records[1:]))
    files["empty_fasta"] = c / "empty.fasta"
    files["empty_fasta"].write_text("")
    files["conflict"] = _fasta(c / "conflict.fasta", [*records, (hashes[5], "ACGTACGTAC")])
    files["gapped"] = _fasta(
        c / "aligned.fasta", [(h, s[:5] + "--" + s[5:] + "..") for h, s in records]
    )
    files["partial_fasta"] = _fasta(c / "partial.fasta", records[:-3])
    files["no_name"] = _fasta(c / "no-name.fasta", [("", data.sequences[0]), *records])


def _write_trees(c: Path, data, files: dict[str, Path]) -> None:
    seqs = data.sequences
    text = random_newick(seqs, seed=0)
    files["tree"] = c / "tree.nwk"
    files["tree"].write_text(text + "\n")
    files["half_tree"] = c / "half-tree.nwk"
    files["half_tree"].write_text(random_newick(seqs[: len(seqs) // 2], seed=1) + "\n")
    files["no_lengths"] = c / "no-lengths.nwk"
    files["no_lengths"].write_text(re.sub(r":[0-9.]+", "", text) + "\n")
    files["negative_length"] = c / "negative-length.nwk"
    files["negative_length"].write_text(text.replace(":0.", ":-0.", 1) + "\n")
    files["dup_tips"] = c / "dup-tips.nwk"
    files["dup_tips"].write_text(random_newick([*seqs, seqs[0]], seed=2) + "\n")
    files["unrooted"] = c / "unrooted.nwk"
    third = len(seqs) // 3
    parts = [random_newick(seqs[i : i + third], seed=3)[:-1] for i in range(0, 3 * third, third)]
    rest = ",".join(f"{s}:0.1" for s in seqs[3 * third :])
    files["unrooted"].write_text("(" + ",".join(f"{p}:0.1" for p in parts) + (f",{rest}" if rest else "") + ");\n")
    files["not_newick"] = c / "not-newick.nwk"
    files["not_newick"].write_text("this is not a tree\n")
    files["empty_tree"] = c / "empty.nwk"
    files["empty_tree"].write_text("")


def _write_matrices(c: Path, data, files: dict[str, Path]) -> None:
    ids = data.sample_ids
    rng = np.random.default_rng(5)
    upper = np.triu(rng.uniform(0.1, 0.9, size=(len(ids), len(ids))), 1)
    matrix = upper + upper.T
    files["matrix"] = _lsmat(c / "dm.tsv", ids, matrix)
    files["partial_matrix"] = _lsmat(c / "partial-dm.tsv", ids[:-4], matrix[:-4, :-4])
    files["not_square"] = _lsmat(c / "not-square.tsv", ids, matrix)
    files["not_square"].write_text("\n".join(files["not_square"].read_text().splitlines()[:-2]) + "\n")
    nan = matrix.copy()
    nan[1, 2] = nan[2, 1] = np.nan
    files["nan_matrix"] = _lsmat(c / "nan-dm.tsv", ids, nan)
    asymmetric = matrix.copy()
    asymmetric[1, 2] += 0.3
    files["asymmetric"] = _lsmat(c / "asymmetric-dm.tsv", ids, asymmetric)
    negative = matrix.copy()
    negative[1, 2] = negative[2, 1] = -0.5
    files["negative_matrix"] = _lsmat(c / "negative-dm.tsv", ids, negative)
    files["matrix_csv"] = c / "dm.csv"
    files["matrix_csv"].write_text(files["matrix"].read_text().replace("\t", ","))
    np.save(c / "lonely.npy", matrix)
    files["npy_no_ids"] = c / "lonely.npy"
    files["garbage_matrix"] = c / "garbage-dm.tsv"
    files["garbage_matrix"].write_text("\tS000\tS001\nS000\t0\tabc\nS001\tabc\t0\n")


def _write_lists_and_predictions(c: Path, data, files: dict[str, Path]) -> None:
    ids = data.sample_ids
    files["train_ids"] = c / "train.txt"
    files["train_ids"].write_text("\n".join(ids[:22]) + "\n")
    files["val_ids"] = c / "val.txt"
    files["val_ids"].write_text("\n".join(ids[22:]) + "\n")
    files["unknown_ids"] = c / "unknown.txt"
    files["unknown_ids"].write_text("X1\nX2\nX3\n")
    files["empty_ids"] = c / "empty-ids.txt"
    files["empty_ids"].write_text("\n# nothing here\n")
    files["overlap_ids"] = c / "overlap.txt"
    files["overlap_ids"].write_text("\n".join(ids[20:]) + "\n")
    files["pred_a"] = _previous_predictions(c / "aam.tsv", ids[22:])
    files["pred_b"] = _previous_predictions(c / "rf.tsv", ids[22:], shift=1.0)
    files["pred_other"] = _previous_predictions(c / "other-samples.tsv", ids[:8])
    files["pred_csv"] = c / "predictions.csv"
    files["pred_csv"].write_text(files["pred_a"].read_text().replace("\t", ","))
    files["pred_columns"] = _write_tsv(
        c / "no-predicted.tsv", ["sample_id", "actual"], [[s, 1.0] for s in ids[22:]]
    )
    files["pred_dups"] = _previous_predictions(c / "dup-predictions.tsv", [*ids[22:], ids[22]])
    files["pred_empty_value"] = _write_tsv(
        c / "empty-value.tsv",
        ["sample_id", "actual", "predicted"],
        [[s, 1.0, "" if i == 2 else 2.0] for i, s in enumerate(ids[22:])],
    )
    files["pred_text"] = _write_tsv(
        c / "text-predictions.tsv",
        ["sample_id", "actual", "predicted"],
        [[s, "gum", "tongue"] for s in ids[22:]],
    )
    files["pred_probability"] = _write_tsv(
        c / "bad-probability.tsv",
        ["sample_id", "actual", "predicted", "gum", "tongue"],
        [[s, "gum", "gum", 1.7, -0.7] for s in ids[22:]],
    )
    files["directory_tsv"] = c / "dir.tsv"
    files["directory_tsv"].mkdir()
    files["notes"] = c / "notes.txt"
    files["notes"].write_text("some notes\n")


def _write_runs(c: Path, data, files: dict[str, Path]) -> None:
    from aam_core import pretrain, train

    train(table=data.table, metadata=data.metadata, metadata_column="age", output_dir=c / "run", **TINY_MODEL)
    files["model"] = c / "run" / "checkpoints" / "best.pt"
    files["last"] = c / "run" / "checkpoints" / "last.pt"
    files["run_dir"] = c / "run"
    pretrain(table=data.table, unifrac_penalty=0, output_dir=c / "pre", **TINY_MODEL)
    files["pretrained"] = c / "pre" / "checkpoints" / "best.pt"
    whole = files["model"].read_bytes()
    files["truncated_model"] = c / "truncated.pt"
    files["truncated_model"].write_bytes(whole[: len(whole) // 2])
    files["config"] = c / "run" / "config.json"
    files["pretrain_config"] = c / "pre" / "config.json"
    files["bad_json"] = c / "bad.json"
    files["bad_json"].write_text('{"data": {"table": \n')
    files["unknown_key"] = c / "unknown-key.json"
    files["unknown_key"].write_text(json.dumps({"training": {"epochz": 3}}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every file the cases name, by placeholder."""
    c = tmp_path_factory.mktemp("corpus")
    data = write_tiny_data(c / "data", n_samples=N_SAMPLES)
    files: dict[str, Path] = {
        "table": data.table,
        "metadata": data.metadata,
        "absent": c / "absent.file",
        "absent_tsv": c / "absent.tsv",
    }
    for write in (_write_tables, _write_metadata, _write_fastas, _write_trees, _write_matrices):
        write(c, data, files)
    _write_lists_and_predictions(c, data, files)
    _write_runs(c, data, files)
    files["root"] = c
    return files


# -- the cases -----------------------------------------------------------------------------------
@attrs.frozen
class Case:
    """One command with one bad input: the flags added to the command's valid base (a later flag
    replaces the base's), what the error line must contain, and the outputs it runs against."""

    command: str
    flags: tuple[str, ...]
    needles: tuple[str, ...]
    #: ``previous`` (an output holding an earlier result), ``fresh`` (an output not there yet).
    modes: tuple[str, ...] = ("previous", "fresh")
    #: Whether ``--force`` is added where the command has it.
    force: bool = True
    #: The baseline ``aam baseline`` is given (None: no NAME argument).
    baseline: str | None = "random-forest"
    xfail: str | None = None


#: The valid invocation each case adds its flags to ({out}: the output, per mode).
BASE = {
    "train": ["--table", "{table}", "--metadata", "{metadata}", "--metadata-column", "age", *TINY, "--output-dir", "{out}"],
    "pretrain": ["--table", "{table}", "--unifrac-penalty", "0", *TINY, "--output-dir", "{out}"],
    "predict": ["--model", "{model}", "--table", "{table}", "--metadata", "{metadata}", "--output", "{out}"],
    "baseline": [
        "--table", "{table}", "--metadata", "{metadata}", "--metadata-column", "age",
        "--train-samples", "{train_ids}", "--val-samples", "{val_ids}", "--output", "{out}",
        "--n-estimators", "5", "--n-jobs", "1",
    ],
    "cv": [
        "--table", "{table}", "--metadata", "{metadata}", "--metadata-column", "age", "--folds", "2",
        *TINY, "--baseline-option", "n_estimators=5", "--baseline-option", "n_jobs=1", "--output-dir", "{out}",
    ],
    "evaluate": [],
    "unifrac": ["--table", "{table}", "--tree", "{tree}", "--output", "{out}"],
    "explain": ["--model", "{model}", "--table", "{table}", "--metadata", "{metadata}", "--steps", "2", "--output-dir", "{out}"],
}
#: Commands whose output is a directory (a previous run there is replaced only with --force).
DIRECTORY_OUTPUT = ("train", "pretrain", "cv", "explain")
#: An earlier ``aam explain`` folder, beside a person's notes (other directory commands get
#: test_cli's previous run): ``--force`` would replace these very names.
PREVIOUS_EXPLAIN = {
    "attributions.tsv": b"sample_id\tfeature_id\tsequence\ttaxonomy\tabundance\tattribution\nA\tf\tACGT\t\t1.0\t0.5\n",
    "attributions.biom": b"not really a BIOM table",
    "importance.tsv": b"id\timportance\nf\t0.5\n",
    "features.tsv": b"feature_id\tsequence\nf\tACGT\n",
    "samples.tsv": b"sample_id\tpredicted\nA\t1.0\n",
    "summary.json": b'{"previous": "explanation"}\n',
    "figures/top_features.png": b"\x89PNG\r\n\x1a\nfake",
    "figures/waterfall.png": b"\x89PNG\r\n\x1a\nfake too",
    "notes.txt": b"a person's own notes\n",
}
#: The name of a fresh output file, by command.
OUTPUT_NAME = {"predict": "predictions.tsv", "baseline": "rf.tsv", "unifrac": "dm.tsv"}

TABLE_COMMANDS = ("train", "pretrain", "predict", "explain", "baseline", "cv", "unifrac")
METADATA_COMMANDS = ("train", "predict", "explain", "baseline", "cv")
TARGET_COMMANDS = ("train", "baseline", "cv")
HASHED_COMMANDS = ("train", "pretrain", "predict", "explain", "baseline", "cv", "unifrac")

#: ``--table FILE``: (placeholder, what the line says beside the file name, commands).
TABLE_CASES = {
    "missing": ("absent", [], TABLE_COMMANDS),
    "empty": ("empty_file", ["empty"], TABLE_COMMANDS),
    "directory": ("folder", ["directory"], TABLE_COMMANDS),
    "truncated-hdf5": ("truncated", ["not a readable BIOM table", "truncated"], TABLE_COMMANDS),
    "random-bytes": ("random", ["not a readable BIOM table"], TABLE_COMMANDS),
    "text": ("hello", ["not a readable BIOM table"], TABLE_COMMANDS),
    "truncated-json": ("cut_json", ["not a readable BIOM table"], TABLE_COMMANDS),
    "json-not-biom": ("other_json", ["not a readable BIOM table"], TABLE_COMMANDS),
    "zero-samples": ("no_samples", ["no samples"], TABLE_COMMANDS),
    "zero-features": ("no_features", ["no features"], TABLE_COMMANDS),
    "duplicate-samples": ("dup_samples", ["Duplicate sample IDs", "'S000'"], TABLE_COMMANDS),
    "duplicate-features": ("dup_features", ["Duplicate observation IDs"], TABLE_COMMANDS),
    "hashed-ids-without-sequences": ("hashed", ["not nucleotide sequences", "--sequences"], TABLE_COMMANDS[:-1]),
    "negative-counts": ("negative", ["negative", "'S003'"], TABLE_COMMANDS),
    "nan-counts": ("nan_counts", ["non-finite", "'S004'"], TABLE_COMMANDS),
    "all-samples-empty": ("all_empty", ["no reads"], ("train", "pretrain", "baseline", "cv")),
    "ids-with-trailing-spaces": ("spaced_ids", ["'S000 '", "spaces"], METADATA_COMMANDS),
    "ids-in-another-case": ("lower_ids", ["'s000'", "case"], METADATA_COMMANDS),
    "qiime2-artifact": ("qza", ["QIIME 2 artifact", "qiime tools export"], TABLE_COMMANDS),
    "comma-separated": ("csv_table", ["comma-separated"], TABLE_COMMANDS),
    "metadata-given-as-table": ("metadata", ["metadata", "--metadata"], TABLE_COMMANDS),
    "fasta-given-as-table": ("fasta", ["FASTA", "--sequences"], TABLE_COMMANDS),
}

#: ``--metadata FILE`` problems of the file itself (every command that reads metadata).
METADATA_CASES = {
    "missing": ("absent", []),
    "empty": ("empty_file", ["empty"]),
    "directory": ("folder", ["directory"]),
    "comma-separated": ("csv", ["comma-separated", "tab"]),
    "biom-given-as-metadata": ("table", ["BIOM table", "--table"]),
    "json-biom-given-as-metadata": ("table_json", ["BIOM table", "--table"]),
    "excel-workbook": ("xlsx", ["Excel", "tab-separated"]),
    "no-id-column": ("no_id", ["'age'", "'sample-id'", "'#SampleID'", "sample_name"]),
    "duplicate-ids": ("dup_ids", ["'S002'", "unique"]),
    "duplicate-columns": ("dup_columns", ["'age'", "duplicated"]),
    "no-samples": ("header_only", ["at least one ID"]),
    "not-utf8": ("latin1", ["UTF-8"]),
    "unknown-column-type": ("bad_type", ["'numbr'", "'categorical', 'numeric'"]),
    "text-in-numeric-column": ("type_clash", ["'abc'", "numeric"]),
    "ragged-row": ("ragged", ["more cells"]),
    "no-shared-samples": ("no_overlap", ["No sample IDs are shared", "'X0'"]),
}

#: ``--metadata FILE`` whose target column cannot be learned (commands that fit a model).
TARGET_CASES = {
    "all-empty-target": ("empty_target", [], ["'age'", "no numeric value"]),
    "target-with-units": ("years", [], ["'age'", " years'", "--classifier"]),
    "target-all-missing-markers": ("na_target", [], ["'age'", "'NA'"]),
    "one-class": ("one_class", ["--metadata-column", "site", "--classifier"], ["'site'", "one class", "'gum'"]),
    "unknown-target-column": ("metadata", ["--metadata-column", "agee"], ["'agee'", "Available: age, site"]),
}

#: ``--sequences FILE`` with the hashed table.
FASTA_CASES = {
    "missing": ("absent", []),
    "empty": ("empty_fasta", ["empty"]),
    "directory": ("folder", ["directory"]),
    "protein": ("protein", ["'MKVLAAGIVG", "not a nucleotide sequence", "00000000000000000000000000000000"]),
    "empty-record": ("empty_record", ["header without sequence"]),
    "conflicting-duplicate-ids": ("conflict", ["'00000000000000000000000000000005'", "twice"]),
    "aligned-with-gaps": ("gapped", ["gap", "unaligned"]),
    "missing-ids": ("partial_fasta", ["3 features", "no sequence"]),
    "record-without-name": ("no_name", ["without an ID"]),
    "metadata-given-as-fasta": ("metadata", ["metadata"]),
    "biom-given-as-fasta": ("table", ["BIOM table", "--table"]),
}

#: ``--tree FILE`` (with the commands' way of asking for UniFrac).
TREE_CASES = {
    "missing": ("absent", ["not found"]),
    "empty": ("empty_tree", ["empty"]),
    "directory": ("folder", ["directory"]),
    "not-newick": ("not_newick", ["not a Newick tree"]),
    "biom-given-as-tree": ("table", ["BIOM table"]),
    "missing-tips": ("half_tree", ["are not tips", "--prune-missing"]),
    "no-branch-lengths": ("no_lengths", ["branch lengths", "no length"]),
    "negative-branch-length": ("negative_length", ["length -0."]),
    "duplicate-tips": ("dup_tips", ["appears more than once"]),
    "unrooted": ("unrooted", ["unrooted", "root"]),
}
TREE_FLAGS = {"unifrac": [], "pretrain": ["--unifrac-penalty", "1"], "train": ["--unifrac-penalty", "1"]}

#: ``--unifrac-matrix FILE`` (pretraining, or training with a UniFrac penalty).
MATRIX_CASES = {
    "missing": ("absent_tsv", ["not found"]),
    "directory": ("directory_tsv", ["directory"]),
    "does-not-cover-the-table": ("partial_matrix", ["4 of 30 samples are not in", "'S026'"]),
    "not-square": ("not_square", ["not square"]),
    "nan": ("nan_matrix", ["NaN"]),
    "asymmetric": ("asymmetric", ["not symmetric"]),
    "negative": ("negative_matrix", ["negative"]),
    "comma-separated": ("matrix_csv", ["'.csv'", "Available: .h5, .hdf5, .npy, .tsv"]),
    "npy-without-ids": ("npy_no_ids", ["lonely.ids.txt"]),
    "not-numbers": ("garbage_matrix", ["line 2", "not a number"]),
}
MATRIX_FLAGS = {"pretrain": ["--unifrac-penalty", "1"], "train": ["--unifrac-penalty", "1"]}


def _file_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, (key, needles, commands) in TABLE_CASES.items():
        for command in commands:
            cases[f"{command}-table-{name}"] = Case(command, ("--table", f"{{{key}}}"), (f"{{{key}.name}}", *needles))
    for command in METADATA_COMMANDS:
        for name, (key, needles) in METADATA_CASES.items():
            cases[f"{command}-metadata-{name}"] = Case(command, ("--metadata", f"{{{key}}}"), (f"{{{key}.name}}", *needles))
    for command in TARGET_COMMANDS:
        for name, (key, flags, needles) in TARGET_CASES.items():
            cases[f"{command}-target-{name}"] = Case(command, ("--metadata", f"{{{key}}}", *flags), tuple(needles))
    for command in HASHED_COMMANDS:
        for name, (key, needles) in FASTA_CASES.items():
            flags = ("--table", "{hashed}", "--sequences", f"{{{key}}}")
            cases[f"{command}-sequences-{name}"] = Case(command, flags, (f"{{{key}.name}}", *needles))
    for command, extra in TREE_FLAGS.items():
        for name, (key, needles) in TREE_CASES.items():
            cases[f"{command}-tree-{name}"] = Case(command, ("--tree", f"{{{key}}}", *extra), (f"{{{key}.name}}", *needles))
    for command, extra in MATRIX_FLAGS.items():
        for name, (key, needles) in MATRIX_CASES.items():
            flags = ("--unifrac-matrix", f"{{{key}}}", *extra)
            cases[f"{command}-unifrac-matrix-{name}"] = Case(command, flags, (f"{{{key}.name}}", *needles))
    return cases


def _cases(command: str, rows: list[tuple], **common) -> dict[str, Case]:
    """``(name, flags, needles[, options])`` rows of one command."""
    out = {}
    for name, flags, needles, *options in rows:
        out[f"{command}-{name}"] = Case(command, tuple(flags), tuple(needles), **common, **(options[0] if options else {}))
    return out



#: Flags and settings every training command refuses, with (flags, needles).
TRAINING_FLAGS = [
    ("batch-size-zero", ["--batch-size", "0"], ["--batch-size", "positive"]),
    ("negative-lr", ["--lr", "-0.1"], ["--lr", "positive", "-0.1"]),
    ("nan-lr", ["--lr", "nan"], ["--lr", "nan"]),
    ("infinite-weight-decay", ["--weight-decay", "inf"], ["--weight-decay", "inf"]),
    ("epochs-zero", ["--epochs", "0"], ["--epochs", "positive"]),
    ("max-asvs-zero", ["--max-asvs", "0"], ["--max-asvs", "positive"]),
    ("max-bp-zero", ["--max-bp", "0"], ["--max-bp", "positive"]),
    ("val-fraction-one", ["--val-fraction", "1"], ["--val-fraction", "between 0 and 1"]),
    ("negative-seed", ["--seed", "-1"], ["--seed", "-1"]),
    ("heads-do-not-divide-width", ["--embedding-dim", "15"], ["--embedding-dim 15", "--attention-heads 2"]),
    ("dropout-one", ["--dropout", "1"], ["--dropout", "[0, 1)"]),
    ("rarefy-depth-zero", ["--rarefy-depth", "0"], ["--rarefy-depth", "positive"]),
    ("not-a-number", ["--epochs", "x"], ["--epochs", "'x'"]),
    ("misspelled-flag", ["--epoch", "3"], ["--epoch", "--epochs"]),
    ("unknown-parallel-strategy", ["--parallel", "ddpp"], ["'ddpp'", "Available:", "single"]),
    ("output-dir-is-a-file", ["--output-dir", "{notes}"], ["--output-dir", "notes.txt"]),
]

TRAIN = _cases("train", [
    *TRAINING_FLAGS,
    ("val-fraction-zero", ["--val-fraction", "0"], ["--val-fraction", "between 0 and 1"]),
    ("test-fraction-one", ["--test-fraction", "1"], ["--test-fraction", "between 0 and 1"]),
    ("negative-patience", ["--patience", "-1"], ["--patience", ">= 0"]),
    ("negative-neighbours", ["--neighbours", "-3"], ["--neighbours", ">= 0"]),
    ("fractions-leave-no-training", ["--val-fraction", "0.5", "--test-fraction", "0.5"], ["--val-fraction 0.5", "--test-fraction 0.5"]),
    ("rarefy-deeper-than-every-sample", ["--rarefy-depth", "1000000000"], ["--rarefy-depth", "table.biom"]),
    ("fractional-counts-with-rarefy", ["--table", "{fractional}", "--rarefy-depth", "5"], ["fractional.biom", "whole read counts"]),
    ("unknown-target-loss", ["--target-loss", "l1"], ["--target-loss", "'l1'"]),
    ("unknown-fusion", ["--categorical-columns", "site", "--fusion", "gmm"], ["'gmm'", "Available:", "gmu"]),
    ("categorical-column-is-the-target", ["--categorical-columns", "site,age"], ["--categorical-columns", "'age'", "--metadata-column"]),
    ("train-samples-unknown", ["--train-samples", "{unknown_ids}", "--val-samples", "{val_ids}"], ["unknown.txt", "'X1'"]),
    ("train-samples-empty", ["--train-samples", "{empty_ids}", "--val-samples", "{val_ids}"], ["empty-ids.txt", "no sample IDs"]),
    ("train-samples-missing", ["--train-samples", "{absent}", "--val-samples", "{val_ids}"], ["absent.file", "not found"]),
    ("train-samples-directory", ["--train-samples", "{folder}", "--val-samples", "{val_ids}"], ["folder", "directory"]),
    ("train-samples-is-the-metadata", ["--train-samples", "{metadata}", "--val-samples", "{val_ids}"], ["metadata.tsv", "one sample ID per line"]),
    ("train-and-val-overlap", ["--train-samples", "{train_ids}", "--val-samples", "{overlap_ids}"], ["'S020'", "both"]),
    ("train-samples-without-val", ["--train-samples", "{train_ids}"], ["--train-samples", "--val-samples"]),
    ("test-samples-and-test-fraction", ["--test-samples", "{val_ids}", "--test-fraction", "0.2"], ["--test-samples", "--test-fraction"]),
    ("stratify-by-unique-values", ["--stratify-by", "age"], ["--stratify-by", "single sample"]),
    ("stratify-by-missing-column", ["--stratify-by", "body"], ["'body'", "Available: age, site"]),
    ("unifrac-penalty-without-distances", ["--unifrac-penalty", "1"], ["--unifrac-penalty", "--tree"]),
    ("tree-and-matrix", ["--unifrac-penalty", "1", "--tree", "{tree}", "--unifrac-matrix", "{matrix}"], ["--tree", "--unifrac-matrix"]),
    ("output-dir-inside-a-file", ["--output-dir", "{notes}/run"], ["notes.txt", "not a directory"]),
    ("previous-run-without-force", [], ["--force"], {"modes": ("previous",), "force": False}),
    ("resume-from-best", ["--resume-from", "{model}"], ["best.pt", "last.pt"]),
    ("resume-from-text-file", ["--resume-from", "{notes}"], ["notes.txt", "not an AAM checkpoint"],),
    ("resume-from-missing", ["--resume-from", "{absent}"], ["absent.file", "not found"]),
    ("resume-from-pretraining", ["--resume-from", "{pretrained}"], ["best.pt", "'pretrain'"]),
    ("pretrained-encoder-is-a-trained-model", ["--pretrained-encoder", "{model}"], ["best.pt", "'train'"]),
    ("pretrained-encoder-is-text", ["--pretrained-encoder", "{notes}"], ["notes.txt"],),
    ("freeze-base-without-encoder", ["--freeze-base"], ["--freeze-base", "--pretrained-encoder"]),
    ("config-missing", ["--config", "{absent}"], ["absent.file", "not found"]),
    ("config-directory", ["--config", "{folder}"], ["folder", "directory"]),
    ("config-not-json", ["--config", "{bad_json}"], ["bad.json", "not valid JSON"]),
    ("config-is-a-table", ["--config", "{table}"], ["table.biom", "not valid JSON"]),
    ("config-unknown-key", ["--config", "{unknown_key}"], ["unknown-key.json", "epochz"]),
    ("config-of-pretraining", ["--config", "{pretrain_config}"], ["config.json", "aam pretrain"]),
])

PRETRAIN = _cases("pretrain", [
    *TRAINING_FLAGS,
    ("no-tree-or-matrix", ["--unifrac-penalty", "1"], ["--tree", "--unifrac-matrix"]),
    ("nothing-to-learn", ["--nuc-penalty", "0"], ["--unifrac-penalty", "--nuc-penalty"]),
    ("batch-of-one-for-unifrac", ["--unifrac-penalty", "1", "--tree", "{tree}", "--batch-size", "1"], ["--batch-size", "pairs"]),
    ("tree-and-matrix", ["--unifrac-penalty", "1", "--tree", "{tree}", "--unifrac-matrix", "{matrix}"], ["--tree", "--unifrac-matrix"]),
    ("fractional-counts-with-rarefy", ["--table", "{fractional}", "--rarefy-depth", "5"], ["fractional.biom", "whole read counts"]),
    ("resume-from-trained-model", ["--resume-from", "{last}"], ["last.pt", "'train'"]),
    ("previous-run-without-force", [], ["--force"], {"modes": ("previous",), "force": False}),
])

#: ``--model`` and the flags of every command that runs a trained model (predict, explain).
MODEL_FLAGS = [
    ("model-missing", ["--model", "{absent}"], ["absent.file", "not found"]),
    ("model-is-text", ["--model", "{notes}"], ["notes.txt", "not an AAM checkpoint"],),
    ("model-is-truncated", ["--model", "{truncated_model}"], ["truncated.pt", "not an AAM checkpoint"]),
    ("model-is-the-run-directory", ["--model", "{run_dir}"], ["directory", "checkpoints/best.pt"]),
    ("model-is-a-pretrained-encoder", ["--model", "{pretrained}"], ["best.pt", "'pretrain'"]),
    ("model-is-a-table", ["--model", "{table}"], ["table.biom", "not written by AAM"]),
    ("batch-size-zero", ["--batch-size", "0"], ["--batch-size", "0"]),
    ("unknown-device", ["--device", "foo"], ["--device", "'foo'"]),
]

PREDICT = _cases("predict", [
    *MODEL_FLAGS,
    ("output-is-a-directory", ["--output", "{folder}"], ["folder", "directory"]),
    ("output-inside-a-file", ["--output", "{notes}/p.tsv"], ["notes.txt", "not a directory"]),
    ("output-is-the-table", ["--output", "{table}"], ["table.biom", "--table"]),
    ("output-is-the-metadata", ["--output", "{metadata}"], ["metadata.tsv", "--metadata"]),
])

BASELINE = _cases("baseline", [
    ("unknown-baseline", [], ["'random-forrest'", "Available:", "random-forest"], {"baseline": "random-forrest"}),
    ("no-baseline-named", [], ["NAME", "--list"], {"baseline": None}),
    ("n-estimators-zero", ["--n-estimators", "0"], ["--n-estimators", "positive"]),
    ("max-features-nonsense", ["--max-features", "lots"], ["--max-features", "'lots'"]),
    ("n-jobs-zero", ["--n-jobs", "0"], ["--n-jobs"]),
    ("categorical-column-missing", ["--categorical-columns", "nosuch"], ["--categorical-columns", "'nosuch'", "metadata.tsv"]),
    ("unknown-features", ["--features", "tfidf"], ["--features", "'tfidf'"]),
    ("rarefy-depth-zero", ["--rarefy-depth", "0"], ["--rarefy-depth", "positive"]),
    ("rarefy-deeper-than-every-sample", ["--rarefy-depth", "1000000000"], ["--rarefy-depth", "table.biom"]),
    ("fractional-counts-with-rarefy", ["--table", "{fractional}", "--rarefy-depth", "5"], ["fractional.biom", "whole read counts"]),
    ("train-samples-unknown", ["--train-samples", "{unknown_ids}"], ["unknown.txt", "'X1'"]),
    ("train-samples-missing", ["--train-samples", "{absent}"], ["--train-samples", "absent.file"]),
    ("train-samples-is-the-metadata", ["--train-samples", "{metadata}"], ["metadata.tsv", "one sample ID per line"]),
    ("validation-overlaps-training", ["--val-samples", "{overlap_ids}"], ["'S020'", "both"]),
    ("test-samples-unknown", ["--test-samples", "{unknown_ids}"], ["unknown.txt", "'X1'"]),
    ("output-is-a-figure", ["--output", "{out}.png"], ["--output", ".png"]),
    ("output-is-a-directory", ["--output", "{folder}"], ["folder", "directory"]),
    ("output-inside-a-file", ["--output", "{notes}/rf.tsv"], ["notes.txt", "not a directory"]),
    ("output-is-the-metadata", ["--output", "{metadata}"], ["metadata.tsv", "--metadata"]),
    ("output-is-a-sample-list", ["--output", "{train_ids}"], ["train.txt", "--train-samples"]),
    ("baseline-option-without-value", ["--baseline-option", "n_estimators"], ["--baseline-option", "KEY=VALUE"]),
    ("baseline-option-unknown", ["--baseline-option", "depth=3"], ["--depth", "'random-forest'"]),
])

CV = _cases("cv", [
    *[row for row in TRAINING_FLAGS if row[0] in ("batch-size-zero", "negative-lr", "epochs-zero", "negative-seed", "output-dir-is-a-file")],
    ("one-fold", ["--folds", "1"], ["--folds", "at least 2"]),
    ("more-folds-than-samples", ["--folds", "100"], ["--folds 100", "30"]),
    ("group-by-missing-column", ["--group-by", "subject"], ["'subject'", "Available: age, site"]),
    ("stratify-by-missing-column", ["--stratify-by", "body"], ["'body'", "Available: age, site"]),
    ("unknown-baseline", ["--baseline", "random-forrest"], ["'random-forrest'", "Available:"]),
    ("baseline-option-unknown", ["--baseline-option", "depth=3"], ["--depth"]),
    ("unknown-fusion", ["--categorical-columns", "site", "--fusion", "gmm"], ["'gmm'", "Available:"]),
    ("categorical-column-is-the-target", ["--categorical-columns", "age"], ["--categorical-columns", "'age'"]),
    ("config-missing", ["--config", "{absent}"], ["--config", "absent.file"]),
    ("previous-run-without-force", [], ["--force"], {"modes": ("previous",), "force": False}),
    ("output-dir-inside-a-file", ["--output-dir", "{notes}/cv"], ["notes.txt", "not a directory"]),
])

EVALUATE = _cases("evaluate", [
    ("no-files", [], ["--predictions"]),
    ("missing-file", ["--predictions", "{absent}"], ["absent.file"]),
    ("directory", ["--predictions", "{folder}"], ["folder", "directory"]),
    ("empty-file", ["--predictions", "{empty_file}"], ["empty.biom", "empty"]),
    ("biom-table", ["--predictions", "{table}"], ["table.biom", "BIOM table"]),
    ("metadata-file", ["--predictions", "{metadata}"], ["metadata.tsv", "sample_id, actual, predicted"]),
    ("comma-separated", ["--predictions", "{pred_csv}"], ["predictions.csv", "comma-separated"]),
    ("missing-column", ["--predictions", "{pred_columns}"], ["no-predicted.tsv", "predicted"]),
    ("duplicate-samples", ["{pred_dups}"], ["dup-predictions.tsv", "'S022'"]),
    ("empty-value", ["{pred_empty_value}"], ["empty-value.tsv", "line 4"]),
    ("different-samples", ["{pred_a}", "{pred_other}"], ["aam.tsv", "other-samples.tsv"]),
    ("text-scored-as-regression", ["--regression", "{pred_text}"], ["text-predictions.tsv", "non-numeric"]),
    ("per-class-of-regression", ["--per-class", "{pred_a}", "{pred_b}"], ["--per-class", "--classifier"]),
    ("probability-out-of-range", ["{pred_probability}"], ["bad-probability.tsv", "'gum'"]),
], modes=("inputs",))

UNIFRAC = _cases("unifrac", [
    ("unknown-metric", ["--metric", "jaccard"], ["--metric", "'jaccard'"]),
    ("unknown-device", ["--device", "tpu"], ["--device", "'tpu'"]),
    ("output-unknown-extension", ["--output", "{out}.txt"], ["--output", "'.txt'"]),
    ("output-in-a-missing-directory", ["--output", "{absent}/dm.tsv"], ["absent.file", "does not exist"]),
    ("output-is-a-directory", ["--output", "{directory_tsv}"], ["dir.tsv", "directory"]),
    ("hashed-table-and-a-tree-of-sequences", ["--table", "{hashed}"], ["hashed.biom", "tree.nwk", "--sequences"]),
])

EXPLAIN = _cases("explain", [
    *MODEL_FLAGS,
    ("samples-unknown", ["--samples", "{unknown_ids}"], ["unknown.txt", "'X1'"]),
    ("samples-empty", ["--samples", "{empty_ids}"], ["empty-ids.txt", "no sample IDs"]),
    ("samples-missing", ["--samples", "{absent}"], ["absent.file", "not found"]),
    ("samples-directory", ["--samples", "{folder}"], ["folder", "directory"]),
    ("samples-is-the-metadata", ["--samples", "{metadata}"], ["metadata.tsv", "one sample ID per line"]),
    ("samples-is-the-table", ["--samples", "{table}"], ["table.biom", "not a text file of sample IDs"]),
    ("table-all-samples-empty", ["--table", "{all_empty}"], ["all-empty.biom", "reads"]),
    ("unknown-method", ["--method", "shap"], ["'shap'", "Available:", "occlusion"]),
    ("top-zero", ["--top", "0"], ["--top", "at least 1"]),
    ("steps-zero", ["--steps", "0"], ["--steps", "at least 1"]),
    ("waterfall-sample-unknown", ["--sample", "NOPE"], ["--sample 'NOPE'"]),
    ("waterfall-sample-not-explained", ["--samples", "{val_ids}", "--sample", "S000"], ["--sample 'S000'"]),
    ("output-dir-is-a-file", ["--output-dir", "{notes}"], ["--output-dir", "notes.txt"]),
    ("output-dir-inside-a-file", ["--output-dir", "{notes}/explain"], ["notes.txt", "not a directory"]),
    ("previous-result-without-force", [], ["--force"], {"modes": ("previous",), "force": False}),
])

CASES: dict[str, Case] = {
    **_file_cases(), **TRAIN, **PRETRAIN, **PREDICT, **EXPLAIN, **BASELINE, **CV, **EVALUATE, **UNIFRAC,
}


# -- running them --------------------------------------------------------------------------------
def _output(command: str, mode: str, folder: Path) -> Path | None:
    """Where the command writes: an existing result (``previous``) or a new path (``fresh``)."""
    if command == "evaluate":
        return None
    if command in DIRECTORY_OUTPUT:
        if mode == "previous" and command == "explain":
            return _write_folder(folder / "previous", PREVIOUS_EXPLAIN)
        if mode == "previous":
            return write_previous_run(folder / "previous")
        return folder / "fresh-run"
    target = folder / mode / OUTPUT_NAME[command]
    target.parent.mkdir()
    if mode == "previous":
        target.write_bytes(PREVIOUS_FILE)
    return target


def _argv(case: Case, files: dict[str, Path], out: Path | None) -> list[str]:
    values = {**files, "out": out}
    argv = [case.command]
    if case.command == "baseline" and case.baseline is not None:
        argv.append(case.baseline)
    argv += [str(a).format(**values) for a in [*BASE[case.command], *case.flags]]
    if case.force and case.command in DIRECTORY_OUTPUT and out is not None and out.exists():
        argv.append("--force")
    return argv


def _params() -> list:
    return [
        pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [])
        for name, case in CASES.items()
    ]


@pytest.mark.parametrize("name", _params())
def test_bad_input_is_one_line_and_changes_nothing(name, corpus, run_cli, tmp_path):
    case = CASES[name]
    inputs = snapshot(corpus["root"])
    needles = [n.format(**corpus) for n in case.needles]
    for mode in case.modes:
        out = _output(case.command, mode, tmp_path)
        before = snapshot(tmp_path)
        result = run_cli(*_argv(case, corpus, out))
        assert_one_line_error(result, *needles)
        assert snapshot(tmp_path) == before, f"{mode}: the output changed"
    assert snapshot(corpus["root"]) == inputs, "an input file changed"


#: Bad input through the console script in its own process, where log messages reach stderr too.
CONSOLE = {
    "unifrac-metadata-as-table": (["unifrac", "--table", "{metadata}", "--tree", "{tree}", "--output", "{out}/dm.tsv"], None),
    "unifrac-fasta-with-an-empty-record": (
        ["unifrac", "--table", "{hashed}", "--sequences", "{empty_record}", "--tree", "{tree}", "--output", "{out}/dm.tsv"],
        None,
    ),
    "predict-missing-metadata": (["predict", "--model", "{model}", "--table", "{table}", "--metadata", "{absent}", "--output", "{out}/p.tsv"], None),
    "explain-missing-metadata": (
        ["explain", "--model", "{model}", "--table", "{table}", "--metadata", "{absent}", "--output-dir", "{out}/explain"],
        None,
    ),
    "train-missing-table": (
        ["train", "--table", "{absent}", "--metadata", "{metadata}", "--metadata-column", "age", "--output-dir", "{out}/run"],
        None,
    ),
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=why)] if why else [])
        for name, (_, why) in CONSOLE.items()
    ],
)
def test_the_console_script_prints_only_the_error(name, corpus, start_aam, tmp_path):
    argv = [a.format(**corpus, out=tmp_path) for a in CONSOLE[name][0]]
    process = start_aam(*argv)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert err.startswith("aam: error: ") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
