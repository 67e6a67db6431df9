"""Loading a table and its metadata: QIIME conventions, filtering, and errors a person can act on."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from aam_core.config import DataConfig
from aam_core.data import load_dataset, read_sample_list
from aam_core.data.categories import CategoryEncoder
from aam_core.data.demo import demo_paths
from aam_core.data.tokens import N_TOKEN, PAD, tokenize
from aam_core.errors import DataError

ID_HEADERS = ["#SampleID", "sample-id", "id", "sampleid", "sample_name"]
BASES = {"A": 1, "C": 2, "G": 3, "T": 4}


@pytest.fixture
def aam_log(caplog):
    caplog.set_level(logging.INFO, logger="aam")
    return caplog


def expected_tokens(sequence: str, width: int) -> np.ndarray:
    row = np.zeros(width, dtype=np.uint8)
    row[: len(sequence)] = [BASES.get(b, N_TOKEN) for b in sequence[:width]]
    return row


# -- metadata conventions -----------------------------------------------------------------------
@pytest.mark.parametrize("header", ID_HEADERS)
def test_every_qiime_id_header_is_accepted(make_tiny_data, header):
    data = make_tiny_data(id_header=header)
    ds = load_dataset(data.config())
    assert list(ds.sample_ids) == data.sample_ids
    np.testing.assert_allclose(ds.target, data.age)


@pytest.mark.parametrize("q2_types", [True, False])
def test_q2_types_row_is_not_a_sample(make_tiny_data, q2_types):
    data = make_tiny_data(q2_types=q2_types)
    assert ("#q2:types" in data.metadata.read_text()) is q2_types
    ds = load_dataset(data.config(categorical_columns=["site"]))
    assert len(ds) == len(data.sample_ids)
    assert "#q2:types" not in set(ds.sample_ids)
    assert list(ds.column("site")) == list(data.site)


def test_whitespace_and_bom_are_stripped(tiny_data):
    lines = ["\ufeff sample-id \t age \t site "]
    lines += [
        f"  {s}\t {a} \t{c}  "
        for s, a, c in zip(tiny_data.sample_ids, tiny_data.age, tiny_data.site, strict=True)
    ]
    tiny_data.metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = load_dataset(tiny_data.config(categorical_columns=["site"]))
    assert list(ds.sample_ids) == tiny_data.sample_ids
    np.testing.assert_allclose(ds.target, tiny_data.age)
    assert list(ds.column("site")) == list(tiny_data.site)


def test_windows_line_endings_and_bom_are_read(tiny_data, write_biom):
    """Files saved on Windows: CRLF line ends and a byte-order mark, in metadata, FASTA and
    sample lists."""
    text = tiny_data.metadata.read_text()
    tiny_data.metadata.write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8"))
    ids = [f"{i:032x}" for i in range(len(tiny_data.sequences))]
    write_biom(tiny_data.table, tiny_data.counts, ids, tiny_data.sample_ids)
    fasta = tiny_data.folder / "dna-sequences.fasta"
    fasta.write_bytes("".join(f">{i}\r\n{s}\r\n" for i, s in zip(ids, tiny_data.sequences, strict=True)).encode())
    ds = load_dataset(tiny_data.config(sequences=str(fasta), categorical_columns=["site"]))
    assert list(ds.sample_ids) == tiny_data.sample_ids
    np.testing.assert_allclose(ds.target, tiny_data.age)
    assert list(ds.column("site")) == list(tiny_data.site)
    assert set(ds.sequences) == set(tiny_data.sequences)
    listed = tiny_data.folder / "train.txt"
    listed.write_bytes(("\ufeff" + "\r\n".join(tiny_data.sample_ids[:3]) + "\r\n").encode("utf-8"))
    assert read_sample_list(listed) == tiny_data.sample_ids[:3]


@pytest.fixture
def study_metadata(tiny_data, write_tsv):
    """The tiny samples with a numeric-looking ``study`` column (Qiita study IDs)."""
    studies = np.array(["11052", "550", "10317"])[np.arange(len(tiny_data.sample_ids)) % 3]
    rows = [
        [s, a, st] for s, a, st in zip(tiny_data.sample_ids, tiny_data.age, studies, strict=True)
    ]
    write_tsv(tiny_data.metadata, ["sample-id", "age", "study"], rows)
    return studies


def test_numeric_looking_categories_stay_strings(tiny_data, study_metadata):
    ds = load_dataset(tiny_data.config(categorical_columns=["study"]))
    assert list(ds.column("study")) == list(study_metadata)
    encoder = CategoryEncoder.fit(ds, ["study"])
    assert encoder.vocab["study"] == ["10317", "11052", "550"]  # sorted as text, no '11052.0'


def test_q2_types_categorical_keeps_numbers_as_text(tiny_data, write_tsv):
    rows = [[s, a, "11052"] for s, a in zip(tiny_data.sample_ids, tiny_data.age, strict=True)]
    write_tsv(tiny_data.metadata, ["sample-id", "age", "study"], rows, ["numeric", "categorical"])
    ds = load_dataset(tiny_data.config())
    assert set(ds.column("study")) == {"11052"}


# -- alignment and filtering --------------------------------------------------------------------
def test_samples_missing_on_either_side_are_dropped_and_counted(tiny_data, write_tsv, aam_log):
    rows = [
        [s, a, c]
        for s, a, c in zip(tiny_data.sample_ids, tiny_data.age, tiny_data.site, strict=True)
    ]
    rows = rows[2:] + [["extra1", 30, "gum"], ["extra2", 31, "gum"], ["extra3", 32, "gum"]]
    write_tsv(tiny_data.metadata, ["sample-id", "age", "site"], rows)
    ds = load_dataset(tiny_data.config())
    assert list(ds.sample_ids) == tiny_data.sample_ids[2:]
    np.testing.assert_allclose(ds.target, tiny_data.age[2:])
    text = aam_log.text
    assert "Dropped 2 samples" in text and "not in" in text
    assert "3 samples of" in text


@pytest.mark.parametrize("bad", ["", "unknown", "NaN", "NA", "n/a", "missing", "35 years"])
def test_empty_or_non_numeric_targets_are_dropped(tiny_data, write_tsv, aam_log, bad):
    ages = [str(a) for a in tiny_data.age]
    ages[3] = bad
    ages[7] = bad
    rows = [[s, a] for s, a in zip(tiny_data.sample_ids, ages, strict=True)]
    write_tsv(tiny_data.metadata, ["sample-id", "age"], rows)
    ds = load_dataset(tiny_data.config())
    kept = [s for i, s in enumerate(tiny_data.sample_ids) if i not in (3, 7)]
    assert list(ds.sample_ids) == kept
    assert np.isfinite(ds.target).all()
    assert "Dropped 2 samples: empty or non-numeric 'age'" in aam_log.text


def test_empty_samples_are_dropped(tiny_data, write_biom, aam_log):
    counts = tiny_data.counts.copy()
    counts[[0, 5]] = 0
    write_biom(tiny_data.table, counts, tiny_data.sequences, tiny_data.sample_ids)
    ds = load_dataset(tiny_data.config())
    assert "S000" not in set(ds.sample_ids) and "S005" not in set(ds.sample_ids)
    assert len(ds) == len(tiny_data.sample_ids) - 2
    assert "Dropped 2 samples: no reads" in aam_log.text
    # ASVs only those samples held are gone too; the rest line up with their counts.
    assert ds.counts.shape[1] == len(ds.sequences) == ds.tokens.shape[0]
    assert (np.asarray(ds.counts.sum(axis=0)).ravel() > 0).all()


def test_counts_line_up_with_sequences(tiny_data):
    ds = load_dataset(tiny_data.config())
    column = {seq: j for j, seq in enumerate(tiny_data.sequences)}
    dense = ds.counts.toarray()
    for j, seq in enumerate(ds.sequences):
        np.testing.assert_array_equal(dense[:, j], tiny_data.counts[:, column[seq]])


def test_no_shared_samples_names_both_files(tiny_data, write_tsv):
    write_tsv(tiny_data.metadata, ["sample-id", "age"], [["other1", 1], ["other2", 2]])
    with pytest.raises(DataError) as err:
        load_dataset(tiny_data.config())
    message = str(err.value)
    assert str(tiny_data.table) in message and str(tiny_data.metadata) in message


def test_rarefy_depth_drops_shallow_samples(tiny_data, aam_log):
    totals = tiny_data.counts.sum(axis=1)
    depth = int(np.median(totals))
    ds = load_dataset(tiny_data.config(rarefy_depth=depth))
    deep = [s for s, t in zip(tiny_data.sample_ids, totals, strict=True) if t >= depth]
    assert sorted(ds.sample_ids) == sorted(deep)
    np.testing.assert_array_equal(np.asarray(ds.counts.sum(axis=1)).ravel(), depth)
    assert (
        f"Dropped {len(totals) - len(deep)} samples: fewer than --rarefy-depth {depth}"
        in aam_log.text
    )


# -- files that cannot be used ------------------------------------------------------------------
@pytest.mark.parametrize("which", ["table", "metadata", "sequences"])
def test_missing_files_are_data_errors(tiny_data, which):
    missing = str(tiny_data.folder / "nope.file")
    with pytest.raises(DataError, match="not found") as err:
        load_dataset(tiny_data.config(**{which: missing}))
    assert missing in str(err.value)


@pytest.mark.parametrize("content", [b"", b"{not json", np.random.default_rng(0).bytes(4096)])
def test_corrupt_biom_is_a_data_error(tiny_data, content):
    tiny_data.table.write_bytes(content)
    with pytest.raises(DataError, match="not a readable BIOM table") as err:
        load_dataset(tiny_data.config())
    assert str(tiny_data.table) in str(err.value)
    assert "\n" not in str(err.value)


def test_text_file_as_table_is_a_data_error(tiny_data):
    tiny_data.table.write_text("hello world\n")
    with pytest.raises(DataError):
        load_dataset(tiny_data.config())


def test_json_biom_loads_like_hdf5(make_tiny_data):
    hdf5, json_ = make_tiny_data(name="h"), make_tiny_data(name="j", fmt="json")
    assert json_.table.read_text().lstrip().startswith("{")
    a, b = load_dataset(hdf5.config()), load_dataset(json_.config())
    assert list(a.sample_ids) == list(b.sample_ids)
    assert list(a.sequences) == list(b.sequences)
    assert (a.counts != b.counts).nnz == 0
    np.testing.assert_array_equal(a.tokens, b.tokens)


def test_unknown_metadata_column_lists_the_available_ones(tiny_data):
    with pytest.raises(DataError) as err:
        load_dataset(tiny_data.config(metadata_column="agee"))
    message = str(err.value)
    assert "--metadata-column 'agee'" in message
    assert "Available: age, site" in message


def test_unknown_categorical_column_lists_the_available_ones(tiny_data):
    with pytest.raises(DataError) as err:
        load_dataset(tiny_data.config(categorical_columns=["sitee"]))
    assert "'sitee'" in str(err.value) and "age, site" in str(err.value)


# -- sequences ------------------------------------------------------------------------------------
@pytest.fixture
def hashed(tiny_data, write_biom):
    """The tiny table re-written with hashed feature IDs; returns the hash → sequence map."""
    ids = [f"{i:032x}" for i in range(7, 7 + len(tiny_data.sequences))]
    write_biom(tiny_data.table, tiny_data.counts, ids, tiny_data.sample_ids)
    return dict(zip(ids, tiny_data.sequences, strict=True))


def write_fasta(path, records: dict[str, str]):
    path.write_text("".join(f">{i}\n{s}\n" for i, s in records.items()))
    return path


def test_hashed_ids_need_sequences(tiny_data, hashed):
    with pytest.raises(DataError, match="--sequences") as err:
        load_dataset(tiny_data.config())
    assert next(iter(hashed)) in str(err.value)


def test_fasta_resolves_hashed_ids(make_tiny_data, write_biom):
    plain = make_tiny_data(name="plain")
    data = make_tiny_data(name="hashed")
    ids = [f"{i:032x}" for i in range(len(data.sequences))]
    write_biom(data.table, data.counts, ids, data.sample_ids)
    # The FASTA may hold extra records and lowercase bases.
    records = {i: s.lower() for i, s in zip(ids, data.sequences, strict=True)} | {"extra": "ACGT"}
    fasta = write_fasta(data.folder / "dna-sequences.fasta", records)
    resolved = load_dataset(data.config(sequences=str(fasta)))
    direct = load_dataset(plain.config())
    assert list(resolved.sequences) == list(direct.sequences)
    np.testing.assert_array_equal(resolved.tokens, direct.tokens)


def test_fasta_may_repeat_an_id_with_the_same_sequence(tiny_data, hashed):
    """FASTA files concatenated from several runs repeat shared ASVs; only a conflict is refused."""
    records = list(hashed.items())
    fasta = tiny_data.folder / "dna-sequences.fasta"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in [*records, *records[:5]]))
    ds = load_dataset(tiny_data.config(sequences=str(fasta)))
    assert set(ds.sequences) == set(tiny_data.sequences)
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in [*records, (records[0][0], "ACGT")]))
    with pytest.raises(DataError, match="appears twice with different sequences"):
        load_dataset(tiny_data.config(sequences=str(fasta)))


def test_classic_tab_separated_table_still_loads(tiny_data):
    """A classic BIOM TSV ('#OTU ID' header) is a table, not a metadata file given as --table."""
    rows = ["# Constructed from biom file", "#OTU ID\t" + "\t".join(tiny_data.sample_ids)]
    rows += [s + "\t" + "\t".join(map(str, col)) for s, col in zip(tiny_data.sequences, tiny_data.counts.T, strict=True)]
    classic = tiny_data.folder / "table.tsv"
    classic.write_text("\n".join(rows) + "\n")
    ds = load_dataset(tiny_data.config(table=str(classic)))
    assert list(ds.sample_ids) == tiny_data.sample_ids
    assert ds.counts.sum() == tiny_data.counts.sum()


def test_fasta_missing_some_ids_is_a_data_error(tiny_data, hashed):
    records = dict(list(hashed.items())[:-3])
    fasta = write_fasta(tiny_data.folder / "dna-sequences.fasta", records)
    with pytest.raises(DataError, match="3 features") as err:
        load_dataset(tiny_data.config(sequences=str(fasta)))
    assert list(hashed)[-1] in str(err.value) or list(hashed)[-3] in str(err.value)


def test_iupac_and_n_become_token_5(tiny_data, write_biom):
    sequences = list(tiny_data.sequences)
    sequences[0] = "ACGTNRYKM" + sequences[0][9:]
    sequences[1] = "acgtn" + sequences[1][5:]
    write_biom(tiny_data.table, tiny_data.counts, sequences, tiny_data.sample_ids)
    ds = load_dataset(tiny_data.config())
    row = {s: i for i, s in enumerate(ds.sequences)}
    np.testing.assert_array_equal(
        ds.tokens[row[sequences[0].upper()], :9], [1, 2, 3, 4, 5, 5, 5, 5, 5]
    )
    np.testing.assert_array_equal(ds.tokens[row[sequences[1].upper()], :5], [1, 2, 3, 4, 5])


def test_long_sequences_are_truncated_with_one_warning(tiny_data):
    max_bp = 25
    n_long = sum(len(s) > max_bp for s in tiny_data.sequences)
    assert n_long > 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(tiny_data.config(max_bp=max_bp))
    truncation = [w for w in caught if "truncated" in str(w.message)]
    assert len(truncation) == 1
    assert f"{n_long} sequences" in str(truncation[0].message)
    assert ds.tokens.shape[1] == max_bp
    for seq, tokens in zip(ds.sequences, ds.tokens, strict=True):
        np.testing.assert_array_equal(tokens, expected_tokens(seq, max_bp))


def test_tokens_map_bases_and_pad_with_zero(tiny_data):
    ds = load_dataset(tiny_data.config())
    width = max(len(s) for s in tiny_data.sequences)
    assert ds.tokens.dtype == np.uint8 and ds.tokens.shape == (len(ds.sequences), width)
    for seq, tokens in zip(ds.sequences, ds.tokens, strict=True):
        np.testing.assert_array_equal(tokens, expected_tokens(seq, width))
        assert (tokens[len(seq) :] == PAD).all()


def test_tokenize_directly():
    out = tokenize(["ACGT", "tgca", "AN-"], max_bp=10)
    np.testing.assert_array_equal(out, [[1, 2, 3, 4], [4, 3, 2, 1], [1, N_TOKEN, N_TOKEN, PAD]])


# -- the demo dataset shipped in the package ----------------------------------------------------
def test_demo_dataset_loads():
    paths = demo_paths()
    assert paths.table.is_file() and paths.metadata.is_file()
    total = paths.table.stat().st_size + paths.metadata.stat().st_size
    assert total < 1_000_000
    ds = load_dataset(
        DataConfig(
            table=str(paths.table),
            metadata=str(paths.metadata),
            metadata_column=paths.metadata_column,
            categorical_columns=paths.categorical_columns,
        )
    )
    assert 250 <= len(ds) <= 350
    assert len(set(ds.column("qiita_study_id"))) == 9
    assert np.isfinite(ds.target).all()
    assert ds.tokens.shape[1] == 100


def test_metadata_sharing_no_sample_is_one_line_from_a_real_process(tiny_data, tmp_path, start_aam):
    """The error alone: no log line about the mismatched samples printed before it."""
    foreign = tmp_path / "foreign.tsv"
    foreign.write_text("sample-id\tage\n" + "".join(f"X{i}\t{i}\n" for i in range(5)))
    process = start_aam(
        "train", "--table", tiny_data.table, "--metadata", foreign, "--metadata-column", "age",
        "--output-dir", tmp_path / "run",
    )  # fmt: skip
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aam: error:") and "foreign.tsv" in lines[0], err
    assert not (tmp_path / "run").exists()
