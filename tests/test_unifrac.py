"""Exact UniFrac: equal to scikit-bio on random trees and tables, per batch as in the full matrix."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from scipy import sparse

from aam_core.errors import DataError
from aam_core.unifrac import BatchUniFrac, profiles, unifrac_matrix
from aam_core.unifrac.engine import UniFracEngine
from aam_core.unifrac.inputs import read_counts
from aam_core.unifrac.tree import match_tips, parse_newick, read_tree

skbio = pytest.importorskip("skbio")
from skbio.diversity import beta_diversity  # noqa: E402

METRICS = ("unweighted", "weighted-normalized")
LENGTHS = np.array([0.0, 0.05, 0.3, 1.0, 2.5])


def random_newick(rng: np.random.Generator, tips: list[str]) -> str:
    """A random rooted binary tree over ``tips`` with some zero-length branches."""
    nodes = list(tips)
    while len(nodes) > 1:
        i, j = sorted(rng.choice(len(nodes), size=2, replace=False))
        a, b = nodes.pop(j), nodes.pop(i)
        la, lb = rng.choice(LENGTHS, size=2)
        nodes.append(f"({a}:{la},{b}:{lb})")
    return nodes[0] + ";"


def random_case(seed: int, n_samples: int = 12, n_tips: int = 16):
    """Counts [samples, features] over all tips but the last (a tip no sample has); sample 0 has
    one ASV, sample 1 none; one feature is absent from every sample."""
    rng = np.random.default_rng(seed)
    tips = [f"t{i}" for i in range(n_tips)]
    counts = rng.integers(1, 9, size=(n_samples, n_tips - 1)) * (rng.random((n_samples, n_tips - 1)) < 0.4)
    counts[0] = 0
    counts[0, int(rng.integers(n_tips - 1))] = 5
    counts[1] = 0
    counts[:, 3] = 0
    return random_newick(rng, tips), counts, tips[:-1]


def skbio_distances(newick: str, counts: np.ndarray, taxa: list[str], metric: str) -> np.ndarray:
    tree = skbio.TreeNode.read(io.StringIO(newick))
    ids = [f"s{i}" for i in range(len(counts))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-bio warns about empty samples
        if metric == "unweighted":
            result = beta_diversity("unweighted_unifrac", counts, ids=ids, taxa=taxa, tree=tree)
        else:
            result = beta_diversity("weighted_unifrac", counts, ids=ids, taxa=taxa, tree=tree, normalized=True)
    return result.data


def full_matrix(engine: UniFracEngine) -> np.ndarray:
    out = np.full((engine.n_samples, engine.n_samples), np.nan)
    for i0, values in engine.stripes():
        i1 = i0 + values.shape[0]
        out[i0:i1, i0:] = values
        out[i0:, i0:i1] = values.T
    return out


@pytest.fixture(params=["cost-model", "all-dense", "all-sparse"])
def split(request, monkeypatch) -> None:
    """Which nodes take the dense route: as the cost model says, or all of them, or none."""
    for kind in profiles._DENSE_COST:
        if request.param == "all-dense":
            monkeypatch.setitem(profiles._DENSE_COST, kind, 0.0)
        elif request.param == "all-sparse":
            monkeypatch.setitem(profiles._DENSE_COST, kind, 1e300)


@pytest.mark.usefixtures("split")
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(4))
def test_equals_scikit_bio_on_random_trees(seed, metric):
    newick, counts, taxa = random_case(seed)
    engine = UniFracEngine(counts, taxa, None, parse_newick(newick), metric)
    got = full_matrix(engine)
    want = skbio_distances(newick, counts, taxa, metric)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got, got.T) and np.all(np.diag(got) == 0)


@pytest.mark.parametrize("metric", METRICS)
def test_samples_without_reads_are_0_apart_and_1_from_the_others(metric):
    newick = "((a:1,b:2):0.5,(c:1,d:3):0.25);"
    counts = np.array([[0, 0, 0, 0], [3, 0, 1, 0], [0, 0, 0, 0], [0, 2, 0, 2]])
    got = full_matrix(UniFracEngine(counts, list("abcd"), None, parse_newick(newick), metric))
    assert got[0, 2] == 0.0
    np.testing.assert_allclose(got[0, [1, 3]], 1.0, atol=1e-15)
    np.testing.assert_allclose(got, skbio_distances(newick, counts, list("abcd"), metric), atol=1e-12)


@pytest.mark.usefixtures("split")
@pytest.mark.parametrize("metric", METRICS)
def test_batches_hold_the_full_matrix_entries(metric):
    newick, counts, taxa = random_case(7, n_samples=20)
    batch = BatchUniFrac(sparse.csr_matrix(counts.astype(np.float32)), taxa, None, parse_newick(newick), metric)
    full = full_matrix(batch.engine)
    rng = np.random.default_rng(0)
    for size in (1, 2, 8, 20):
        rows = rng.choice(20, size=size, replace=False)
        got = batch(rows)
        assert got.shape == (size, size) and got.dtype == np.float64
        np.testing.assert_allclose(got, full[np.ix_(rows, rows)], rtol=0, atol=1e-14)
        assert np.array_equal(got, got.T)
    assert batch([5]).tolist() == [[0.0]]


def test_a_batch_asks_only_for_rows_of_the_table():
    newick, counts, taxa = random_case(1)
    batch = BatchUniFrac(counts, taxa, None, parse_newick(newick))
    with pytest.raises(IndexError):
        batch([0, len(counts)])


@pytest.mark.parametrize("metric", METRICS)
def test_the_torch_backend_gives_the_numpy_results(metric, monkeypatch):
    """The GPU path's dense part is torch; run it on the CPU against the NumPy one."""
    pytest.importorskip("torch")
    from aam_core.unifrac import engine as engine_module
    from aam_core.unifrac import kernels

    torch_dense = kernels.TorchDense
    monkeypatch.setattr(engine_module, "_GPU_DENSE_SPEEDUP", 1.0)
    monkeypatch.setattr(kernels, "TorchDense", lambda dense, _device: torch_dense(dense, "cpu"))
    newick, counts, taxa = random_case(3, n_samples=30, n_tips=40)
    tree = parse_newick(newick)
    on_numpy = UniFracEngine(counts, taxa, None, tree, metric, device="cpu")
    on_torch = UniFracEngine(counts, taxa, None, tree, metric, device="cuda")
    assert isinstance(on_torch.dense, torch_dense)
    np.testing.assert_allclose(full_matrix(on_torch), full_matrix(on_numpy), rtol=0, atol=1e-13)


def test_tips_match_feature_ids_or_sequences_and_shared_tips_add_up():
    newick = "((ACGT:1,ccgg:2):0.5,(h3:1,d:3):0.25);"
    tree = parse_newick(newick)
    ids = ["h1", "h2", "h3", "h4"]
    sequences = ["ACGT", "CCGG", "TTTT", "CCGG"]  # h3 is matched by ID; h2 and h4 share a tip
    assert match_tips(tree, ids, sequences, prune_missing=False).tolist() == [0, 1, 3, 1]
    counts = np.array([[1, 2, 0, 3], [0, 1, 4, 0], [2, 0, 1, 1]])
    got = full_matrix(UniFracEngine(counts, ids, sequences, tree, "weighted-normalized"))
    merged = np.column_stack([counts[:, 0], counts[:, 1] + counts[:, 3], counts[:, 2]])
    want = skbio_distances(newick, merged, ["ACGT", "ccgg", "h3"], "weighted-normalized")
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_features_missing_from_the_tree_fail_or_are_dropped(caplog):
    tree = parse_newick("((a:1,b:2):0.5,(c:1,d:3):0.25);")
    with pytest.raises(DataError, match=r"^2 of 4 features of the table are not tips of .*\(e\.g\. 'x'\)"):
        match_tips(tree, ["a", "x", "c", "y"], None, prune_missing=False)
    with caplog.at_level("WARNING"):
        nodes = match_tips(tree, ["a", "x", "c", "y"], None, prune_missing=True)
    assert nodes.tolist() == [0, -1, 3, -1]
    assert "Dropped 2 of 4 features" in caplog.text
    with pytest.raises(DataError, match="None of the 2 features"):
        match_tips(tree, ["x", "y"], None, prune_missing=True)


def test_newick_labels_lengths_quotes_and_comments():
    tree = parse_newick("(('a b':1[x],b_c:2e-1)inner:0.5,'it''s':3)root;")
    assert tree.names == ["a b", "b_c", "inner", "it's", "root"]
    assert tree.parent.tolist() == [2, 2, 4, 4, -1]
    np.testing.assert_array_equal(tree.length[:-1], [1.0, 0.2, 0.5, 3.0])
    assert tree.is_tip.tolist() == [True, True, False, True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("((a,b);", "unclosed"),
        ("(a,b));", "unbalanced"),
        ("(a:1,b:2)", "does not end with ';'"),
        ("", "empty"),
        ("(a:x,b:1);", "'x' is not a number"),
        ("(a:1,b:1);junk", "after the closing ';'"),
        ("not a tree", "two labels in a row"),
    ],
)
def test_malformed_newick_is_one_line(text, message):
    with pytest.raises(DataError, match=message) as info:
        parse_newick(text, "t.nwk")
    assert "\n" not in str(info.value) and str(info.value).startswith("t.nwk is not a Newick tree")


def test_oral_age_subset_equals_scikit_bio(oral_age):
    """The real table's profiles (full size, so the cost model splits nodes as it does in
    production) give scikit-bio's distances for a subset of samples."""
    counts = read_counts(oral_age.table)
    rows = np.sort(np.random.default_rng(0).choice(len(counts.sample_ids), size=150, replace=False))
    subset = counts.matrix[rows].toarray()
    present = subset.sum(axis=0) > 0
    tree = read_tree(oral_age.tree)
    sk_tree = skbio.TreeNode.read(str(oral_age.tree))
    taxa = [f for f, keep in zip(counts.feature_ids, present, strict=True) if keep]
    for metric in METRICS:
        got = BatchUniFrac(counts.matrix, counts.feature_ids, None, tree, metric)(rows)
        ids = [counts.sample_ids[i] for i in rows]
        if metric == "unweighted":
            want = beta_diversity("unweighted_unifrac", subset[:, present], ids=ids, taxa=taxa, tree=sk_tree)
        else:
            want = beta_diversity(
                "weighted_unifrac", subset[:, present], ids=ids, taxa=taxa, tree=sk_tree, normalized=True
            )
        np.testing.assert_allclose(got, want.data, rtol=0, atol=1e-9)


def test_unifrac_matrix_reads_the_table_and_tree(tmp_path, write_biom):
    newick, counts, taxa = random_case(2)
    (tmp_path / "tree.nwk").write_text(newick)
    table = write_biom(tmp_path / "t.biom", counts, taxa, [f"s{i}" for i in range(len(counts))])
    result = unifrac_matrix(table, tmp_path / "tree.nwk", "weighted-normalized", device="cpu")
    assert result.sample_ids == [f"s{i}" for i in range(len(counts))]
    np.testing.assert_allclose(result.matrix, skbio_distances(newick, counts, taxa, "weighted-normalized"), atol=1e-12)


def test_scikit_bio_reads_the_tsv(tmp_path, write_biom):
    from aam_core.unifrac import compute_unifrac

    newick, counts, taxa = random_case(5)
    (tmp_path / "tree.nwk").write_text(newick)
    ids = [f"s{i}" for i in range(len(counts))]
    table = write_biom(tmp_path / "t.biom", counts, taxa, ids)
    path = compute_unifrac(table, tmp_path / "tree.nwk", tmp_path / "dm.tsv", device="cpu")
    read = skbio.DistanceMatrix.read(str(path))
    assert list(read.ids) == ids
    np.testing.assert_allclose(read.data, skbio_distances(newick, counts, taxa, "unweighted"), rtol=0, atol=1e-15)


def test_openblas_runs_on_one_thread_inside_and_as_before_after():
    from aam_core.unifrac import blas

    libraries = blas._openblas()
    if not libraries:
        pytest.skip("no OpenBLAS found in this process")
    before = [get() for get, _ in libraries]
    with blas.one_blas_thread():
        assert [get() for get, _ in libraries] == [1] * len(libraries)
    assert [get() for get, _ in libraries] == before
