"""Metrics equal scikit-learn's, stay JSON-safe, and classification predictions keep their class
probabilities through a file (``aam_core.predictions``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from aam_core.errors import ConfigError, DataError
from aam_core.files import write_tsv_atomic
from aam_core.predictions import predictions_frame, probability_columns, read_probabilities
from aam_core.training.metrics import (
    METRIC_LABELS,
    classification_metrics,
    classification_report,
    compute_metrics,
    format_metrics,
    format_report,
    regression_metrics,
)


@pytest.fixture
def two_classes():
    """40 samples of 'healthy'/'sick', a noisy score for 'sick' and the predicted labels."""
    rng = np.random.default_rng(3)
    actual = rng.choice(["healthy", "sick"], 40)
    sick = np.clip((actual == "sick") * 0.35 + rng.random(40) * 0.65, 0, 1)
    probabilities = np.column_stack([1 - sick, sick])
    predicted = np.where(sick > 0.5, "sick", "healthy")
    return actual, predicted, probabilities


def _plain(value) -> bool:
    """Only Python numbers and strings, however nested (what json writes without a default)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return type(value) in (int, float, str)


def test_regression_metrics_equal_sklearn():
    actual = np.array([20.0, 35.5, 41.0, 60.2, 18.3])
    predicted = np.array([22.0, 30.0, 45.0, 58.0, 25.0])
    values = regression_metrics(actual, predicted)
    assert values["mae"] == pytest.approx(skm.mean_absolute_error(actual, predicted))
    assert values["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(actual, predicted)))
    assert values["r2"] == pytest.approx(skm.r2_score(actual, predicted))
    assert values["n"] == 5 and _plain(values)
    assert math.isnan(regression_metrics([1.0], [2.0])["r2"])  # one sample: undefined, not 0


def test_classification_metrics_without_probabilities_have_no_auc(two_classes):
    actual, predicted, _ = two_classes
    values = classification_metrics(actual, predicted)
    assert set(values) == {"accuracy", "f1", "n"}
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(actual, predicted))
    assert values["f1"] == pytest.approx(skm.f1_score(actual, predicted, average="macro"))
    assert _plain(values)


def test_auc_of_two_classes_equals_sklearn(two_classes):
    actual, predicted, probabilities = two_classes
    values = classification_metrics(actual, predicted, probabilities, ["healthy", "sick"])
    expected = skm.roc_auc_score(actual == "sick", probabilities[:, 1])
    assert 0.6 < expected < 1.0  # an informative but imperfect score: the test can tell
    assert values["auc"] == pytest.approx(expected) and _plain(values)
    # the column order is the class order: the same matrix read the other way round is worse
    swapped = classification_metrics(actual, predicted, probabilities, ["sick", "healthy"])
    assert swapped["auc"] == pytest.approx(1 - expected)
    reordered = classification_metrics(
        actual, predicted, probabilities[:, ::-1], ["sick", "healthy"]
    )
    assert reordered["auc"] == pytest.approx(expected)


def test_auc_is_nan_when_the_samples_hold_one_class(two_classes):
    _, _, probabilities = two_classes
    values = classification_metrics(["sick"] * 40, ["sick"] * 40, probabilities, ["healthy", "sick"])
    assert math.isnan(values["auc"])
    assert json.loads(json.dumps(values))["accuracy"] == 1.0


def test_three_classes_with_probabilities_report_no_auc():
    probabilities = np.full((3, 3), 1 / 3)
    values = classification_metrics(["a", "b", "c"], ["a", "b", "b"], probabilities, ["a", "b", "c"])
    assert "auc" not in values and values["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("probabilities", "classes", "error", "message"),
    [
        (np.full((4, 2), 0.5), None, ConfigError, "need `classes`"),
        (None, ["a", "b"], ConfigError, "give both or neither"),
        (np.full((4, 3), 0.3), ["a", "b"], DataError, r"shape \(4, 3\); expected \(4, 2\)"),
        (np.full((4, 2), 1.5), ["a", "b"], DataError, "between 0 and 1"),
        (np.full((4, 2), np.nan), ["a", "b"], DataError, "finite"),
        (np.full((4, 2), 0.5), ["a", "a"], DataError, "repeat"),
    ],
)
def test_bad_probabilities_are_refused(probabilities, classes, error, message):
    with pytest.raises(error, match=message):
        classification_metrics(["a", "b", "a", "b"], ["a", "a", "a", "b"], probabilities, classes)


def test_compute_metrics_passes_probabilities_through(two_classes):
    actual, predicted, probabilities = two_classes
    classes = ["healthy", "sick"]
    assert compute_metrics(actual, predicted, True, probabilities, classes) == (
        classification_metrics(actual, predicted, probabilities, classes)
    )
    assert compute_metrics([1.0, 2.0], [1.5, 2.5], False) == regression_metrics([1.0, 2.0], [1.5, 2.5])
    with pytest.raises(ConfigError, match="classification only"):
        compute_metrics([1.0, 2.0], [1.5, 2.5], False, probabilities[:2], classes)


def test_classification_report_equals_sklearn():
    actual = np.array(["gum", "gum", "cheek", "tongue", "tongue", "tongue", "cheek"])
    predicted = np.array(["gum", "cheek", "cheek", "tongue", "gum", "tongue", "gum"])
    report = classification_report(actual, predicted)
    assert list(report) == ["cheek", "gum", "tongue"]
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        actual, predicted, labels=["cheek", "gum", "tongue"]
    )
    for i, label in enumerate(report):
        assert report[label]["precision"] == pytest.approx(precision[i])
        assert report[label]["recall"] == pytest.approx(recall[i])
        assert report[label]["f1"] == pytest.approx(f1[i])
        assert report[label]["support"] == support[i]
    assert _plain(report) and json.loads(json.dumps(report)) == report


def test_classification_report_follows_the_given_classes():
    report = classification_report(["a", "a", "b"], ["a", "b", "b"], classes=["c", "b", "a"])
    assert list(report) == ["c", "b", "a"]
    assert report["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["a"]["recall"] == pytest.approx(0.5) and report["b"]["precision"] == 0.5


def test_formatting():
    text = format_metrics({"accuracy": 0.8, "f1": 0.75, "auc": 0.9123, "n": 40})
    assert text == "accuracy 0.800 · F1 0.750 · AUC 0.912 · n 40"
    assert format_metrics({"mae": 1.0, "r2": 0.5}, order=("r2", "mae")) == "R² 0.500 · MAE 1.000"
    assert METRIC_LABELS["auc"] == "AUC"
    lines = format_report(classification_report(["a", "bb", "a"], ["a", "a", "a"])).splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "F1", "support"]
    assert lines[1].split() == ["a", "0.667", "1.000", "0.800", "2"]
    assert lines[2].split() == ["bb", "0.000", "0.000", "0.000", "1"]
    assert len({len(line) for line in lines}) == 1  # aligned columns


# -- the predictions layout ---------------------------------------------------------------------


def test_predictions_frame_round_trips_through_a_file(tmp_path, two_classes):
    actual, predicted, probabilities = two_classes
    ids = [f"S{i}" for i in range(40)]
    frame = predictions_frame(ids, actual, predicted, probabilities, ["healthy", "sick"])
    assert list(frame.columns) == ["sample_id", "actual", "predicted", "healthy", "sick"]
    path = write_tsv_atomic(frame.assign(epoch=4), tmp_path / "val_predictions.tsv")

    back = pd.read_csv(path, sep="\t", dtype={"sample_id": str})
    assert probability_columns(back) == ["healthy", "sick"]  # epoch is bookkeeping
    matrix, classes = read_probabilities(back)
    assert classes == ["healthy", "sick"]
    np.testing.assert_allclose(matrix, probabilities)


def test_predictions_frame_without_probabilities():
    frame = predictions_frame(["a", "b"], [1.0, 2.0], [1.5, 2.5])
    assert list(frame.columns) == ["sample_id", "actual", "predicted"]
    assert read_probabilities(frame.assign(fold=1)) is None


def test_numeric_class_labels_name_their_columns():
    frame = predictions_frame(["a", "b"], [0, 1], [0, 0], np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1])
    assert list(frame.columns)[3:] == ["0", "1"]


def test_a_class_named_like_a_column_is_refused():
    with pytest.raises(DataError, match="class named 'actual'"):
        predictions_frame(["a"], ["x"], ["x"], np.array([[1.0, 0.0]]), ["actual", "x"])


@pytest.mark.parametrize("bad", ["high", "", "1.7"])
def test_a_column_that_is_no_probability_is_refused(bad):
    frame = pd.DataFrame(
        {"sample_id": ["S1", "S2"], "actual": ["a", "b"], "predicted": ["a", "a"],
         "a": [0.7, 0.6], "b": ["0.3", bad]}
    )  # fmt: skip
    with pytest.raises(DataError, match=r"rf\.tsv: column 'b' holds .* for sample 'S2'"):
        read_probabilities(frame, "rf.tsv")
