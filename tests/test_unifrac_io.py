"""``aam unifrac`` end to end: the three output formats, reading them back, and bad inputs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from aam_core.errors import ConfigError, DataError
from aam_core.unifrac import compute_unifrac, read_distance_matrix, unifrac_matrix
from aam_core.unifrac.decimals import format_rows

NEWICK = "(((a:1,b:2):0.5,(c:1,d:3):0.25):0.1,(e:0.5,f:0):2);"
FEATURES = list("abcdef")
COUNTS = np.array(
    [
        [3, 0, 1, 0, 0, 2],
        [0, 5, 0, 0, 1, 0],
        [1, 1, 1, 1, 1, 1],
        [0, 0, 0, 7, 0, 0],
        [2, 0, 0, 0, 9, 4],
    ]
)
SAMPLES = ["S1", "S2", "S3", "S4", "S5"]


@pytest.fixture
def inputs(tmp_path, write_biom):
    """A table and a tree in ``inputs/``, and an empty ``out/`` for results."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (tmp_path / "out").mkdir()
    (folder / "tree.nwk").write_text(NEWICK)
    write_biom(folder / "table.biom", COUNTS, FEATURES, SAMPLES)
    return folder


@pytest.mark.parametrize("metric", ["unweighted", "weighted-normalized"])
@pytest.mark.parametrize("name", ["dm.tsv", "dm.h5", "dm.npy"])
def test_every_format_round_trips(inputs, metric, name):
    out = inputs.parent / "out" / name
    expected = unifrac_matrix(inputs / "table.biom", inputs / "tree.nwk", metric, device="cpu").matrix
    path = compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", out, metric, device="cpu")
    assert path == out
    wanted = ["S4", "S1", "S5"]
    got = read_distance_matrix(out, wanted)
    index = [SAMPLES.index(s) for s in wanted]
    tolerance = 1e-16 if name.endswith(".tsv") else 0.0
    np.testing.assert_allclose(got, expected[np.ix_(index, index)], rtol=0, atol=tolerance)
    leftovers = sorted(p.name for p in out.parent.iterdir())
    assert leftovers == (["dm.ids.txt", "dm.npy"] if name == "dm.npy" else [name])


def test_h5_has_the_layout_ssu_writes(inputs):
    out = inputs.parent / "out" / "dm.h5"
    compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", out, device="cpu")
    with h5py.File(out, "r") as handle:
        assert sorted(handle) == ["format", "matrix", "order", "version"]
        assert handle["matrix"].dtype == np.float64 and handle["matrix"].shape == (5, 5)
        assert [s.decode() for s in handle["order"][:]] == SAMPLES
        assert handle["format"][0] == b"BDSM"


def test_npy_ids_and_tsv_text(inputs):
    out = inputs.parent / "out"
    compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", out / "dm.npy", device="cpu")
    assert (out / "dm.ids.txt").read_text().splitlines() == SAMPLES
    compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", out / "dm.tsv", device="cpu")
    lines = (out / "dm.tsv").read_text().splitlines()
    assert lines[0] == "\t" + "\t".join(SAMPLES)
    assert [line.split("\t")[0] for line in lines[1:]] == SAMPLES
    assert lines[1].split("\t")[1] == "0"


def test_tsv_numbers_are_exact_to_17_decimals():
    values = np.array([[0.0, 1.0, 0.5, 1 / 3, 1e-12, 0.1 + 0.2], [0.999999999999999, 2 / 3, 0.25, 7e-18, 1 - 1e-16, 0.1]])
    rows = format_rows(values)
    assert rows[0].startswith(b"0\t1\t0.5\t0.33333333333333331\t0.000000000001\t")
    assert rows[0].endswith(b"\n") and rows[1].count(b"\t") == 5
    parsed = np.array([[float(v) for v in row.decode().split("\t")] for row in rows])
    np.testing.assert_allclose(parsed, values, rtol=0, atol=1e-17)
    odd = format_rows(np.array([[12.5, -1.0]]))  # outside [0, 10): Python's own formatting
    assert odd == [b"12.5\t-1.0\n"]


def write_npy(folder, matrix, ids):
    np.save(folder / "m.npy", np.asarray(matrix, dtype=float))
    (folder / "m.ids.txt").write_text("\n".join(ids) + "\n")
    return folder / "m.npy"


def test_reading_a_matrix_checks_samples_shape_and_values(tmp_path):
    good = [[0, 0.5, 0.2], [0.5, 0, 0.3], [0.2, 0.3, 0]]
    path = write_npy(tmp_path, good, ["A", "B", "C"])
    np.testing.assert_array_equal(read_distance_matrix(path, ["C", "A"]), [[0, 0.2], [0.2, 0]])
    with pytest.raises(DataError, match=r"^2 of 3 samples are not in .*\(e\.g\. 'X'\)"):
        read_distance_matrix(path, ["X", "A", "Y"])
    with pytest.raises(DataError, match="not symmetric"):
        read_distance_matrix(write_npy(tmp_path, [[0, 0.5], [0.4, 0]], ["A", "B"]), ["A", "B"])
    with pytest.raises(DataError, match="NaN"):
        read_distance_matrix(write_npy(tmp_path, [[0, np.nan], [np.nan, 0]], ["A", "B"]), ["A", "B"])
    with pytest.raises(DataError, match="not a square matrix"):
        read_distance_matrix(write_npy(tmp_path, [[0, 0.5, 0.1], [0.5, 0, 0.1]], ["A", "B"]), ["A"])
    (tmp_path / "m.ids.txt").unlink()
    with pytest.raises(DataError, match="m.ids.txt, which is missing"):
        read_distance_matrix(path, ["A"])
    (tmp_path / "bad.tsv").write_text("\tA\tB\nA\t0\t0.5\n")
    with pytest.raises(DataError, match="not square"):
        read_distance_matrix(tmp_path / "bad.tsv", ["A"])
    with pytest.raises(DataError, match="unknown distance-matrix extension"):
        read_distance_matrix(tmp_path / "m.csv", ["A"])


def test_the_cli_writes_and_prunes(inputs, run_cli, write_biom, caplog):
    out = inputs.parent / "out" / "dm.h5"
    result = run_cli("unifrac", "--table", inputs / "table.biom", "--tree", inputs / "tree.nwk", "--output", out, "--device", "cpu")
    assert result.code == 0 and "Wrote unweighted UniFrac" in result.out
    extra = write_biom(inputs / "extra.biom", np.c_[COUNTS, np.ones(5)], [*FEATURES, "zz"], SAMPLES)
    args = ["unifrac", "--table", extra, "--tree", inputs / "tree.nwk", "--output", out, "--device", "cpu"]
    refused = run_cli(*args)
    assert refused.code == 2
    assert "1 of 7 features" in refused.err and "(e.g. 'zz')" in refused.err
    with caplog.at_level("WARNING"):
        pruned = run_cli(*args, "--prune-missing", "--metric", "weighted-normalized")
    assert pruned.code == 0
    assert "Dropped 1 of 7 features" in caplog.text


def test_hashed_ids_resolve_through_the_fasta(tmp_path, write_biom, run_cli):
    sequences = ["ACGTAC", "CCGGTT", "TTAAGG", "GGCCAA"]
    (tmp_path / "tree.nwk").write_text(f"(({sequences[0]}:1,{sequences[1]}:2):0.5,({sequences[2]}:1,h4:3):0.25);")
    (tmp_path / "seqs.fasta").write_text("".join(f">h{i + 1}\n{s}\n" for i, s in enumerate(sequences)))
    table = write_biom(tmp_path / "t.biom", COUNTS[:, :4] + 1, ["h1", "h2", "h3", "h4"], SAMPLES)
    out = tmp_path / "dm.npy"
    without = run_cli("unifrac", "--table", table, "--tree", tmp_path / "tree.nwk", "--output", out)
    assert without.code == 2 and "3 of 4 features" in without.err
    result = run_cli(
        "unifrac", "--table", table, "--tree", tmp_path / "tree.nwk", "--output", out, "--sequences", tmp_path / "seqs.fasta"
    )
    assert result.code == 0, result.err
    assert read_distance_matrix(out, SAMPLES).shape == (5, 5)


def bad_input(folder, write_biom, what):
    """Paths for one bad input: returns (table, tree, output, expected message)."""
    table, tree = folder / "table.biom", folder / "tree.nwk"
    out = folder.parent / "out" / "dm.tsv"
    if what == "tree missing":
        return table, folder / "none.nwk", out, "Tree file not found"
    if what == "tree not newick":
        (folder / "bad.nwk").write_text("this is not a tree\n")
        return table, folder / "bad.nwk", out, "is not a Newick tree"
    if what == "unrooted tree":
        (folder / "u.nwk").write_text("((a:1,b:2):0.5,(c:1,d:3):0.25,(e:0.5,f:0):2);")
        return table, folder / "u.nwk", out, "unrooted: its root has 3 children"
    if what == "no branch lengths":
        (folder / "n.nwk").write_text("(((a,b),(c,d)),(e,f));")
        return table, folder / "n.nwk", out, "branches have no finite length"
    if what == "table missing":
        return folder / "none.biom", tree, out, "Table file not found"
    if what == "table not biom":
        (folder / "t.biom").write_text('{"id": "not quite BIOM", ')
        return folder / "t.biom", tree, out, "not a readable BIOM table"
    if what == "zero samples":
        empty = write_biom(folder / "empty.biom", np.zeros((0, 6)), FEATURES, [])
        return empty, tree, out, "holds no samples"
    if what == "unknown extension":
        return table, tree, out.with_suffix(".csv"), "unknown extension '.csv'. Available: .h5, .hdf5, .npy, .tsv"
    if what == "output directory missing":
        return table, tree, folder.parent / "nowhere" / "dm.h5", "does not exist"
    if what == "missing tips":
        (folder / "small.nwk").write_text("((a:1,b:2):0.5,(c:1,d:3):0.25);")
        return table, folder / "small.nwk", out, "2 of 6 features"
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "tree missing",
        "tree not newick",
        "unrooted tree",
        "no branch lengths",
        "table missing",
        "table not biom",
        "zero samples",
        "unknown extension",
        "output directory missing",
        "missing tips",
    ],
)
def test_bad_inputs_are_one_line_exit_2_and_write_nothing(inputs, write_biom, run_cli, what):
    table, tree, output, message = bad_input(inputs, write_biom, what)
    before = sorted(p.name for p in inputs.iterdir())
    result = run_cli("unifrac", "--table", table, "--tree", tree, "--output", output, "--device", "cpu")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aam: error:") and message in lines[0], result.err
    assert list((inputs.parent / "out").iterdir()) == []
    assert sorted(p.name for p in inputs.iterdir()) == before
    assert not (inputs.parent / "nowhere").exists()


def test_bad_metric_and_device_are_config_errors(inputs):
    with pytest.raises(ConfigError, match="Unknown UniFrac metric 'weighted'. Available: unweighted, weighted-normalized"):
        compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", inputs / "dm.tsv", "weighted")
    with pytest.raises(ConfigError, match="--device must be auto, cpu or cuda"):
        compute_unifrac(inputs / "table.biom", inputs / "tree.nwk", inputs / "dm.tsv", device="tpu")
    assert not (inputs / "dm.tsv").exists()


def test_the_api_is_exported_beside_the_package():
    import aam_core
    import aam_core.unifrac.batch  # noqa: F401 - importing the package must not shadow the API

    assert aam_core.compute_unifrac is compute_unifrac
    assert aam_core.read_distance_matrix is read_distance_matrix
    assert aam_core.unifrac.unifrac_matrix is unifrac_matrix
    assert aam_core.unifrac.unifrac is compute_unifrac
