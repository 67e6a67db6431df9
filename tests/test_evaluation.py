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
