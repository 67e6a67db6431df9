"""Figures read back from their matplotlib objects: labels, legends, titles, points and lines."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from aam_core.errors import ConfigError
from aam_core.predictions import predictions_frame
from aam_core.training import plots
from aam_core.training.metrics import format_metrics, regression_metrics

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    """Every test starts and ends with no open figure: saving closes what it drew."""
    plt.close("all")
    yield
    plt.close("all")


@pytest.fixture
def ages():
    rng = np.random.default_rng(0)
    actual = rng.uniform(20, 70, 60)
    return actual, actual + rng.normal(0, 4, 60)


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


# -- predicted vs actual -------------------------------------------------------------------------


def test_scatter_axes_title_and_identity_line(ages):
    actual, predicted = ages
    fig = plots.predicted_vs_actual_figure(actual, predicted, "AAM", variable="age", units="years")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "actual age (years)"
    assert ax.get_ylabel() == "predicted age (years)"
    title = ax.get_title()
    assert title.startswith("AAM\n")
    assert title.endswith(format_metrics(regression_metrics(actual, predicted)))
    assert all(f"{key} " in title for key in ("MAE", "RMSE", "R²")) and title.endswith("n 60")
    assert _points(ax) == 60
    assert 0 < ax.collections[0].get_alpha() < 1
    (identity,) = [line for line in ax.get_lines() if line.get_label() == "y = x"]
    xs, ys = identity.get_data()
    np.testing.assert_allclose(xs, ys)
    assert xs[0] < min(actual.min(), predicted.min()) and xs[-1] > max(actual.max(), predicted.max())


def test_scatter_labels_without_a_variable(ages):
    fig = plots.predicted_vs_actual_figure(*ages, "t")
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("actual", "predicted")
    fig = plots.predicted_vs_actual_figure(*ages, "t", units="years")
    assert fig.axes[0].get_xlabel() == "actual (years)"


def test_fainter_points_when_there_are_many():
    few = plots.predicted_vs_actual_figure(np.arange(50.0), np.arange(50.0), "t")
    many = plots.predicted_vs_actual_figure(np.arange(3000.0), np.arange(3000.0), "t")
    assert many.axes[0].collections[0].get_alpha() < few.axes[0].collections[0].get_alpha()


def test_points_coloured_by_group(ages):
    actual, predicted = ages
    groups = ["study 10"] * 30 + ["study 2"] * 20 + [None] * 10
    fig = plots.predicted_vs_actual_figure(
        actual, predicted, "AAM", groups=groups, group_name="qiita_study_id"
    )
    ax = fig.axes[0]
    assert ax.get_legend().get_title().get_text() == "qiita_study_id"
    assert _legend(ax) == ["study 10 (n=30)", "study 2 (n=20)", "(missing) (n=10)", "y = x"]
    sizes = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert sizes == {"study 10 (n=30)": 30, "study 2 (n=20)": 20, "(missing) (n=10)": 10}
    colours = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert len(colours) == 3
    # the points of a group are that group's points
    first = ax.collections[0].get_offsets()
    np.testing.assert_allclose(first[:, 0], actual[:30])


def test_many_groups_keep_the_ten_largest_and_pool_the_rest():
    sizes = list(range(30, 15, -1))  # 15 groups of 30, 29, ..., 16 samples
    groups = np.repeat([f"g{i:02d}" for i in range(15)], sizes)
    values = np.linspace(0, 1, len(groups))
    fig = plots.predicted_vs_actual_figure(values, values, "t", groups=groups, group_name="study")
    labels = _legend(fig.axes[0])
    assert labels[:10] == [f"g{i:02d} (n={sizes[i]})" for i in range(10)]
    assert labels[10] == f"other: 5 groups (n={sum(sizes[10:])})"
    assert labels[11] == "y = x" and len(labels) == 12
    assert _points(fig.axes[0]) == len(groups)
    colours = {c.get_label(): tuple(c.get_facecolor()[0][:3]) for c in fig.axes[0].collections}
    assert len(set(colours.values())) == 11  # ten groups and a grey unlike any of them


def test_group_labels_must_match_the_points(ages):
    with pytest.raises(ValueError, match="3 labels for 60 points"):
        plots.predicted_vs_actual_figure(*ages, "t", groups=["a", "b", "c"])


def test_save_writes_a_png_and_closes_the_figure(ages, tmp_path):
    path = plots.save_predicted_vs_actual(
        *ages, tmp_path / "plots" / "pva.png", "AAM", variable="age", groups=["a", "b"] * 30
    )
    assert path == tmp_path / "plots" / "pva.png" and _is_png(path)
    assert plt.get_fignums() == []
    assert [p.name for p in path.parent.iterdir()] == ["pva.png"]  # no temporary file left


def test_no_samples_still_draws(tmp_path):
    path = plots.save_predicted_vs_actual([], [], tmp_path / "empty.png", "nothing yet")
    assert _is_png(path)


# -- training curves -----------------------------------------------------------------------------


@pytest.fixture
def history():
    """Five epochs as the training loop records them (validation best at epoch 3)."""
    val_mae = [9.0, 6.0, 4.0, 4.5, 5.0]
    return [
        {
            "epoch": e,
            "train/loss": 1.0 / e,
            "train/target_loss": 0.9 / e,
            "speed/samples_per_s": 100.0,
            "lr/model": 1e-4,
            "val/loss": 0.5 + abs(e - 3) * 0.1,
            "val/mae": val_mae[e - 1],
            "val/rmse": val_mae[e - 1] + 1,
            "val/r2": 0.1 * e,
        }
        for e in range(1, 6)
    ]


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_training_curves(history):
    fig = plots.training_curves_figure(history, "mae", units="years")
    loss, metric = fig.axes[:2]
    assert loss.get_xlabel() == metric.get_xlabel() == "epoch"
    assert loss.get_ylabel() == "loss" and metric.get_ylabel() == "MAE (years)"
    assert set(_lines(loss)) == {"training", "validation", "best epoch 3"}
    np.testing.assert_allclose(_lines(loss)["training"].get_ydata(), [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    np.testing.assert_allclose(_lines(loss)["validation"].get_xdata(), [1, 2, 3, 4, 5])
    # no train/mae in the history: only the validation curve on the metric panel
    assert set(_lines(metric)) == {"validation", "best epoch 3"}
    np.testing.assert_allclose(_lines(metric)["validation"].get_ydata(), [9, 6, 4, 4.5, 5])
    assert _lines(metric)["best epoch 3"].get_xdata()[0] == 3
    assert _legend(metric) == ["validation", "best epoch 3"]
    assert fig._suptitle.get_text() == "Training curves\nbest epoch 3: validation MAE 4.000"


def test_training_curves_best_epoch_for_a_higher_is_better_metric(history):
    fig = plots.training_curves_figure(history, "val/r2", title="oral age")
    assert "best epoch 5" in _lines(fig.axes[1])
    assert fig.axes[1].get_ylabel() == "R²"  # units only label metrics in the target's units
    assert fig._suptitle.get_text().startswith("oral age\nbest epoch 5: validation R² 0.500")


def test_training_curves_mark_the_epoch_the_run_kept(history):
    fig = plots.training_curves_figure(history, "rmse", best_epoch=2)
    assert "best epoch 2" in _lines(fig.axes[0]) and "best epoch 2" in _lines(fig.axes[1])


def test_training_curves_with_training_metric_and_nulls(history):
    for i, entry in enumerate(history):
        entry["train/accuracy"] = 0.5 + 0.1 * i
        entry["val/accuracy"] = None if i == 1 else 0.4 + 0.05 * i  # JSON null
    fig = plots.training_curves_figure(history, "accuracy")
    lines = _lines(fig.axes[1])
    assert set(lines) == {"training", "validation", "best epoch 5"}
    assert np.isnan(lines["validation"].get_ydata()[1])
    assert fig.axes[1].get_ylabel() == "accuracy"


def test_training_curves_unknown_metric(history):
    with pytest.raises(ValueError, match="No 'auc' in the training history. Available: loss, mae"):
        plots.training_curves_figure(history, "auc")
    with pytest.raises(ValueError, match="empty"):
        plots.training_curves_figure([], "mae")


def test_save_training_curves(history, tmp_path):
    path = plots.save_training_curves(history, tmp_path / "curves.png", "mae", best_epoch=3)
    assert _is_png(path) and plt.get_fignums() == []


# -- classification ------------------------------------------------------------------------------


def test_confusion_matrix(tmp_path):
    actual = ["gum"] * 4 + ["cheek"] * 3 + ["tongue"] * 5
    predicted = ["gum", "gum", "gum", "cheek", "cheek", "cheek", "gum", *["tongue"] * 4, "gum"]
    fig = plots.confusion_matrix_figure(actual, predicted, "AAM", variable="site")
    ax = fig.axes[0]
    labels = ["cheek", "gum", "tongue"]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert ax.get_xlabel() == "predicted site" and ax.get_ylabel() == "actual site"
    counts = skm.confusion_matrix(actual, predicted, labels=labels)
    assert [int(t.get_text()) for t in ax.texts] == counts.ravel().tolist()
    shading = ax.images[0].get_array()
    np.testing.assert_allclose(shading.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(shading), [2 / 3, 3 / 4, 4 / 5])
    assert "accuracy 0.750" in ax.get_title() and "n 12" in ax.get_title()

    plt.close(fig)
    path = plots.save_confusion_matrix(actual, predicted, tmp_path / "cm.png", "AAM")
    assert _is_png(path) and plt.get_fignums() == []


def test_confusion_matrix_class_order_and_unlisted_labels():
    fig = plots.confusion_matrix_figure(["b", "a", "z"], ["a", "a", "b"], "t", classes=["b", "a"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "z"]
    np.testing.assert_allclose(ax.images[0].get_array()[2], [1.0, 0.0, 0.0])  # z → predicted b


@pytest.fixture
def scored():
    rng = np.random.default_rng(5)
    actual = rng.choice(["control", "case"], 50)
    case = np.clip(0.3 * (actual == "case") + 0.7 * rng.random(50), 0, 1)
    return actual, np.column_stack([1 - case, case])


def test_roc_curve(scored, tmp_path):
    actual, probabilities = scored
    fig = plots.roc_curve_figure(actual, probabilities, ["control", "case"], "AAM")
    ax = fig.axes[0]
    auc = skm.roc_auc_score(actual == "case", probabilities[:, 1])
    assert _legend(ax) == [f"case vs control (AUC {auc:.3f})", "chance (AUC 0.5)"]
    fpr, tpr, _ = skm.roc_curve(actual == "case", probabilities[:, 1])
    curve = ax.get_lines()[0]
    np.testing.assert_allclose(curve.get_xdata(), fpr)
    np.testing.assert_allclose(curve.get_ydata(), tpr)
    assert ax.get_xlabel().startswith("false positive rate")
    assert ax.get_ylabel().startswith("true positive rate")
    assert "positive class: case" in ax.get_title()

    plt.close(fig)
    path = plots.save_roc_curve(actual, probabilities, ["control", "case"], tmp_path / "roc.png", "t")
    assert _is_png(path) and plt.get_fignums() == []


def test_roc_curve_needs_both_classes_and_only_two(scored):
    _, probabilities = scored
    fig = plots.roc_curve_figure(["case"] * 50, probabilities, ["control", "case"], "t")
    assert _legend(fig.axes[0]) == ["chance (AUC 0.5)"]
    assert "both classes" in fig.axes[0].texts[0].get_text()
    with pytest.raises(ConfigError, match="two classes"):
        plots.roc_curve_figure(["a", "b", "c"], np.full((3, 3), 1 / 3), ["a", "b", "c"], "t")


def test_classification_plots_from_a_predictions_frame(scored, tmp_path):
    actual, probabilities = scored
    predicted = np.where(probabilities[:, 1] > 0.5, "case", "control")
    ids = [f"S{i}" for i in range(50)]
    frame = predictions_frame(ids, actual, predicted, probabilities, ["control", "case"])
    confusion, roc = plots.save_classification_plots(
        frame.assign(epoch=3), tmp_path / "cm.png", tmp_path / "roc.png", "AAM"
    )
    assert (confusion, roc) == (tmp_path / "cm.png", tmp_path / "roc.png")
    assert _is_png(confusion) and _is_png(roc) and plt.get_fignums() == []

    three = pd.DataFrame({"sample_id": ["a", "b", "c"], "actual": ["x", "y", "z"],
                          "predicted": ["x", "y", "y"]})  # fmt: skip
    confusion, roc = plots.save_classification_plots(
        three, tmp_path / "cm3.png", tmp_path / "roc3.png", "AAM"
    )
    assert _is_png(confusion) and roc is None and not (tmp_path / "roc3.png").exists()
