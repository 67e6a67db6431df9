"""``evaluate`` and ``aam evaluate``: the same numbers as scikit-learn, on identical samples only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from test_baselines import run_aam

from aam_core.errors import ConfigError, DataError
from aam_core.evaluation import evaluate


def write_predictions(path, ids, actual, predicted, **extra):
    frame = pd.DataFrame({"sample_id": ids, "actual": actual, "predicted": predicted, **extra})
    frame.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def regression_files(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"S{i:02d}" for i in range(25)]
    actual = rng.uniform(20, 70, 25).round(1)
    good = write_predictions(
        tmp_path / "aam.tsv", ids, actual, actual + rng.normal(0, 3, 25), epoch=7
    )
    # the same samples in another order, as a baseline might write them
    order = rng.permutation(25)
    worse = write_predictions(
        tmp_path / "rf.tsv",
        [ids[i] for i in order],
        actual[order],
        actual[order] + rng.normal(0, 9, 25),
    )
    return good, worse


def test_regression_numbers_equal_sklearn(regression_files):
    table = evaluate(regression_files)
    assert list(table.columns) == ["name", "MAE", "RMSE", "R²", "n"]
    assert list(table["name"]) == ["aam.tsv", "rf.tsv"]
    for path, row in zip(regression_files, table.itertuples(index=False), strict=True):
        frame = pd.read_csv(path, sep="\t")
        y, p = frame["actual"], frame["predicted"]
        assert row.MAE == pytest.approx(skm.mean_absolute_error(y, p))
        assert row.RMSE == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
        assert row[3] == pytest.approx(skm.r2_score(y, p))
        assert row.n == 25


def test_classification_numbers_equal_sklearn(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"S{i}" for i in range(30)]
    actual = rng.choice(["gum", "cheek", "tongue"], 30)
    predicted = np.where(rng.random(30) < 0.7, actual, "gum")
    path = write_predictions(tmp_path / "sites.tsv", ids, actual, predicted)
    table = evaluate([path])
    assert list(table.columns) == ["name", "accuracy", "F1", "n"]
    assert table.at[0, "accuracy"] == pytest.approx(skm.accuracy_score(actual, predicted))
    assert table.at[0, "F1"] == pytest.approx(skm.f1_score(actual, predicted, average="macro"))


def test_different_sample_sets_are_refused(tmp_path):
    a = write_predictions(tmp_path / "a.tsv", ["S1", "S2", "S3"], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    b = write_predictions(tmp_path / "b.tsv", ["S1", "S2", "S4"], [1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    with pytest.raises(DataError) as info:
        evaluate([a, b])
    message = str(info.value)
    assert str(a) in message and str(b) in message
    assert "'S3'" in message and "'S4'" in message


def test_different_actual_values_are_refused(tmp_path):
    a = write_predictions(tmp_path / "a.tsv", ["S1", "S2"], [1.0, 2.0], [1.0, 2.0])
    b = write_predictions(tmp_path / "b.tsv", ["S1", "S2"], [1.0, 5.0], [1.0, 2.0])
    with pytest.raises(DataError, match="disagree on the actual value of 1 samples"):
        evaluate([a, b])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id\tactual\tpredicted\nS1\t1\t2\n", "lacks column.*sample_id"),
        ("sample_id\tactual\nS1\t1\n", "lacks column.*predicted"),
        ("sample_id\tactual\tpredicted\n", "no predictions"),
        ("sample_id\tactual\tpredicted\nS1\t1\t\n", "empty value"),
        ("sample_id\tactual\tpredicted\nS1\t1\t2\nS1\t1\t3\n", "more than once"),
        ("", "not a readable TSV"),
    ],
)
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        evaluate([path])


def test_nothing_to_evaluate():
    with pytest.raises(ConfigError):
        evaluate([])
    with pytest.raises(DataError, match="not found"):
        evaluate(["no/such/file.tsv"])


def test_cli_side_by_side(regression_files, capsys, monkeypatch):
    good, worse = regression_files
    code, repeated, err = run_aam(
        ["evaluate", "--predictions", str(good), "--predictions", str(worse)], capsys, monkeypatch
    )
    assert code == 0, err
    header, first, second = repeated.strip().splitlines()
    assert header.split() == ["name", "MAE", "RMSE", "R²", "n"]
    assert first.startswith("aam.tsv") and second.startswith("rf.tsv")
    expected = evaluate([good, worse])
    assert first.split()[1] == f"{expected.at[0, 'MAE']:.3f}"

    code, listed, _ = run_aam(
        ["evaluate", "--predictions", str(good), str(worse)], capsys, monkeypatch
    )
    assert code == 0 and listed == repeated


def test_cli_mismatch_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    a = write_predictions(tmp_path / "a.tsv", ["S1", "S2"], [1.0, 2.0], [1.0, 2.0])
    b = write_predictions(tmp_path / "b.tsv", ["S1", "S3"], [1.0, 2.0], [1.0, 2.0])
    code, out, err = run_aam(["evaluate", "--predictions", str(a), str(b)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith("aam: error:") and len(err.strip().splitlines()) == 1
    assert str(a) in err and str(b) in err


# -- classification files with class probabilities ----------------------------------------------


@pytest.fixture
def probability_files(tmp_path):
    """AAM with probabilities of two classes (QIIME 2 layout), a forest without them."""
    rng = np.random.default_rng(4)
    ids = [f"S{i:02d}" for i in range(40)]
    actual = rng.choice(["control", "case"], 40)
    case = np.clip(0.3 * (actual == "case") + 0.7 * rng.random(40), 0, 1)
    aam = write_predictions(
        tmp_path / "aam.tsv", ids, actual, np.where(case > 0.5, "case", "control"),
        control=1 - case, case=case, epoch=3,
    )  # fmt: skip
    forest = write_predictions(
        tmp_path / "rf.tsv", ids, actual, np.where(rng.random(40) < 0.6, actual, "case")
    )
    return aam, forest, actual, case


def test_auc_from_probability_columns(probability_files):
    aam, forest, actual, case = probability_files
    table = evaluate([aam, forest])
    assert list(table.columns) == ["name", "accuracy", "F1", "AUC", "n"]
    assert table.at[0, "AUC"] == pytest.approx(skm.roc_auc_score(actual == "case", case))
    assert table.at[1, "AUC"] is None  # no probabilities: not available (unlike NaN)
    frame = pd.read_csv(aam, sep="\t")
    assert table.at[0, "accuracy"] == pytest.approx(skm.accuracy_score(actual, frame["predicted"]))


def test_numeric_class_labels_with_probability_columns_are_classification(tmp_path):
    ids = ["a", "b", "c", "d"]
    path = write_predictions(
        tmp_path / "p.tsv", ids, [0, 1, 1, 0], [0, 1, 0, 0],
        **{"0": [0.8, 0.3, 0.6, 0.9], "1": [0.2, 0.7, 0.4, 0.1]},
    )  # fmt: skip
    table = evaluate([path])
    assert list(table.columns) == ["name", "accuracy", "F1", "AUC", "n"]
    assert table.at[0, "accuracy"] == pytest.approx(0.75)
    assert table.at[0, "AUC"] == pytest.approx(1.0)
    # the same numbers without probability columns are a regression
    plain = write_predictions(tmp_path / "plain.tsv", ids, [0, 1, 1, 0], [0, 1, 0, 0])
    assert list(evaluate([plain]).columns) == ["name", "MAE", "RMSE", "R²", "n"]


def test_three_classes_have_no_auc(tmp_path):
    path = write_predictions(
        tmp_path / "p.tsv", ["a", "b", "c"], ["x", "y", "z"], ["x", "y", "y"],
        x=[0.8, 0.1, 0.1], y=[0.1, 0.8, 0.5], z=[0.1, 0.1, 0.4],
    )  # fmt: skip
    assert list(evaluate([path]).columns) == ["name", "accuracy", "F1", "n"]


def test_a_non_numeric_probability_column_is_refused(tmp_path, capsys, monkeypatch):
    path = write_predictions(
        tmp_path / "p.tsv", ["a", "b"], ["x", "y"], ["x", "x"], x=[0.9, 0.6], note=["ok", "odd"]
    )
    with pytest.raises(DataError, match=r"column 'note' holds 'ok' for sample 'a'"):
        evaluate([path])
    code, out, err = run_aam(["evaluate", str(path)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith("aam: error:") and len(err.strip().splitlines()) == 1
    # a regression file may carry other columns: they are not read as probabilities
    numbers = write_predictions(tmp_path / "n.tsv", ["a", "b"], [1.0, 2.0], [1.5, 2.0], note="x")
    assert evaluate([numbers]).at[0, "MAE"] == pytest.approx(0.25)


def test_per_class_numbers_equal_sklearn(probability_files):
    from aam_core.evaluation import evaluate_per_class

    aam, forest, actual, _ = probability_files
    table = evaluate_per_class([aam, forest])
    assert list(table.columns) == ["name", "class", "precision", "recall", "F1", "support"]
    assert list(table["name"]) == ["aam.tsv"] * 2 + ["rf.tsv"] * 2
    for name, path in (("aam.tsv", aam), ("rf.tsv", forest)):
        rows = table[table["name"] == name].set_index("class")
        predicted = pd.read_csv(path, sep="\t")["predicted"]
        precision, recall, _, support = skm.precision_recall_fscore_support(
            actual, predicted, labels=["case", "control"], zero_division=0
        )
        np.testing.assert_allclose(rows.loc[["case", "control"], "precision"], precision)
        np.testing.assert_allclose(rows.loc[["case", "control"], "recall"], recall)
        assert list(rows.loc[["case", "control"], "support"]) == list(support)


def test_cli_classification_with_per_class(probability_files, capsys, monkeypatch):
    aam, forest, _, _ = probability_files
    code, out, err = run_aam(["evaluate", str(aam), str(forest), "--per-class"], capsys, monkeypatch)
    assert code == 0, err
    summary, per_class = out.strip().split("\n\n")
    header, first, second = summary.splitlines()
    assert header.split() == ["name", "accuracy", "F1", "AUC", "n"]
    expected = evaluate([aam, forest])
    assert first.split()[3] == f"{expected.at[0, 'AUC']:.3f}"
    assert second.split()[3] == "-"
    lines = per_class.splitlines()
    assert lines[0].split() == ["name", "class", "precision", "recall", "F1", "support"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["aam.tsv", "case"], ["aam.tsv", "control"], ["rf.tsv", "case"], ["rf.tsv", "control"]
    ]  # fmt: skip


def test_cli_per_class_of_regression_files_is_refused(regression_files, capsys, monkeypatch):
    code, out, err = run_aam(
        ["evaluate", *map(str, regression_files), "--per-class"], capsys, monkeypatch
    )
    assert code == 2 and out == ""
    assert "need classification files" in err and len(err.strip().splitlines()) == 1


def test_read_predictions_keeps_the_other_columns(probability_files):
    from aam_core.evaluation import read_predictions

    aam, *_ = probability_files
    frame = read_predictions(aam)
    assert list(frame.columns) == ["sample_id", "actual", "predicted", "control", "case", "epoch"]
