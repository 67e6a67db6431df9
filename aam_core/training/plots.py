"""Figures of AAM runs and baselines: predicted vs actual, training curves, confusion matrix, ROC.

Each ``*_figure`` function returns a matplotlib figure (for TensorBoard or a notebook); each
``save_*`` function writes one PNG atomically (a temporary name, then a rename) and closes the
figure. Axis labels name the variable and its units wherever they are given, and every figure
carries its metrics, so a PNG stands on its own on a slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from aam_core.files import write_atomic  # noqa: E402
from aam_core.predictions import read_probabilities  # noqa: E402
from aam_core.training.metrics import (  # noqa: E402
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    classification_metrics,
    format_metrics,
    regression_metrics,
    roc_auc,
)

#: Groups drawn in their own colour; the rarer ones share one grey "other" entry.
MAX_GROUPS = 10
MISSING_GROUP = "(missing)"
_BLUE, _GREY, _ORANGE = "#3465a4", "#888888", "#f57900"
#: Group colours: matplotlib's tab10 with its grey swapped for indigo, so no group looks "other".
_GROUP_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#393b79", "#bcbd22", "#17becf",
)  # fmt: skip


def _save(fig, path: str | Path) -> Path:
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def axis_label(kind: str, variable: str | None = None, units: str | None = None) -> str:
    """``actual``, ``actual age`` or ``actual age (years)``."""
    text = kind if not variable else f"{kind} {variable}"
    return f"{text} ({units})" if units else text


def _alpha(n: int) -> float:
    """Opaque for a few points, fainter as they pile up (0.8 at 200 points, 0.25 at 2,300)."""
    return float(np.clip(12.0 / np.sqrt(max(n, 1)), 0.25, 0.8))


def _group_labels(groups: Sequence, n: int) -> np.ndarray:
    labels = pd.Series(list(groups), dtype=object)
    if len(labels) != n:
        raise ValueError(f"groups has {len(labels)} labels for {n} points.")
    return labels.map(lambda g: MISSING_GROUP if pd.isna(g) or str(g) == "" else str(g)).to_numpy(
        dtype=str
    )


def _scatter_groups(ax, actual, predicted, groups, alpha: float) -> list:
    """One colour per frequent group, the rest as one grey "other"; the legend handles, most
    frequent group first and "other" last (drawn first, beneath the others)."""
    names, counts = np.unique(groups, return_counts=True)
    ranked = [names[i] for i in sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))]
    shown, rest = ranked[:MAX_GROUPS], ranked[MAX_GROUPS:]
    style = {"s": 12, "alpha": alpha, "edgecolors": "none"}
    other = None
    if rest:
        mask = np.isin(groups, rest)
        label = f"other: {len(rest)} groups (n={int(mask.sum())})"
        other = ax.scatter(actual[mask], predicted[mask], color=_GREY, label=label, **style)
    handles = []
    for i, name in enumerate(shown):
        mask = groups == name
        label = f"{name} (n={int(mask.sum())})"
        handles.append(
            ax.scatter(actual[mask], predicted[mask], color=_GROUP_COLOURS[i], label=label, **style)
        )
    return handles if other is None else [*handles, other]


def predicted_vs_actual_figure(
    actual: np.ndarray,
    predicted: np.ndarray,
    title: str,
    *,
    variable: str | None = None,
    units: str | None = None,
    groups: Sequence | None = None,
    group_name: str | None = None,
):
    """Predictions against truth with the identity line; MAE, RMSE, R² and n under the title.

    ``variable`` and ``units`` label the axes (``actual age (years)``). ``groups`` (one label per
    point, e.g. the study) colours the points, with a legend titled ``group_name``: the
    :data:`MAX_GROUPS` most frequent groups (ties by name) each in its colour, the others together
    in grey as "other".
    """
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(7.8 if groups is not None else 5.5, 5.5), dpi=110)
    alpha = _alpha(len(actual))
    handles = []
    if groups is None:
        ax.scatter(actual, predicted, s=12, alpha=alpha, edgecolors="none", color=_BLUE)
    else:
        handles = _scatter_groups(ax, actual, predicted, _group_labels(groups, len(actual)), alpha)
    both = np.concatenate([actual, predicted]) if len(actual) else np.array([0.0, 1.0])
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.05 * (hi - lo or 1.0)
    (identity,) = ax.plot(
        [lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", lw=1, color="#555555", label="y = x"
    )
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(axis_label("actual", variable, units))
    ax.set_ylabel(axis_label("predicted", variable, units))
    subtitle = format_metrics(regression_metrics(actual, predicted)) if len(actual) else "no samples"
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    if groups is None:
        ax.legend(loc="upper left", frameon=False)
    else:
        legend = ax.legend(
            handles=[*handles, identity], title=group_name, loc="upper left",
            bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8,
        )  # fmt: skip
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)  # legend markers at full colour, whatever the points' alpha
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_predicted_vs_actual(actual, predicted, path: str | Path, title: str, **keywords) -> Path:
    """Write :func:`predicted_vs_actual_figure` (same keywords) as PNG."""
    return _save(predicted_vs_actual_figure(actual, predicted, title, **keywords), path)


def _series(history: Sequence[dict], key: str) -> np.ndarray:
    """One value per epoch; absent or null entries are NaN."""
    values = [entry.get(key) for entry in history]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def training_curves_figure(
    history: Sequence[dict],
    metric: str,
    *,
    best_epoch: int | None = None,
    units: str | None = None,
    title: str = "Training curves",
):
    """Loss (training and validation) and ``metric`` per epoch, the best epoch marked.

    ``history`` is ``metrics.json``'s per-epoch list (``epoch``, ``train/loss``, ``val/loss``,
    ``val/mae``, ...); ``metric`` is a name such as ``mae`` or ``accuracy`` (``val/mae`` works
    too), drawn for validation and, where the history holds it, training. ``best_epoch`` is the
    epoch the run kept; without it, the epoch with the best validation ``metric``. ``units``
    labels metrics in the target's units (MAE, RMSE).
    """
    if not history:
        raise ValueError("The training history is empty.")
    metric = metric.split("/", 1)[1] if metric.startswith(("val/", "train/")) else metric
    epochs = np.array([entry.get("epoch", i) for i, entry in enumerate(history, start=1)])
    val_metric, train_metric = _series(history, f"val/{metric}"), _series(history, f"train/{metric}")
    if np.isnan(val_metric).all() and np.isnan(train_metric).all():
        found = sorted({k.split("/", 1)[1] for e in history for k in e if k.startswith("val/")})
        raise ValueError(f"No '{metric}' in the training history. Available: {', '.join(found)}.")
    if best_epoch is None and not np.isnan(val_metric).all():
        pick = np.nanargmax if metric in HIGHER_IS_BETTER else np.nanargmin
        best_epoch = int(epochs[pick(val_metric)])

    label = METRIC_LABELS.get(metric, metric)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    panels = (
        (left, "loss", _series(history, "train/loss"), _series(history, "val/loss")),
        (right, axis_label(label, None, units if metric in ("mae", "rmse") else None),
         train_metric, val_metric),
    )  # fmt: skip
    for ax, ylabel, train, val in panels:
        for values, name, colour in ((train, "training", _BLUE), (val, "validation", _ORANGE)):
            if not np.isnan(values).all():
                ax.plot(epochs, values, marker="o", ms=3, lw=1.5, color=colour, label=name)
        if best_epoch is not None:
            ax.axvline(best_epoch, ls=":", color="#555555", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    summary = title
    if best_epoch is not None and best_epoch in epochs:
        value = val_metric[list(epochs).index(best_epoch)]
        if np.isfinite(value):
            summary += f"\nbest epoch {best_epoch}: validation {label} {value:.3f}"
    fig.suptitle(summary, fontsize=10)
    fig.tight_layout()
    return fig


def save_training_curves(history: Sequence[dict], path: str | Path, metric: str, **keywords) -> Path:
    """Write :func:`training_curves_figure` (same keywords) as PNG."""
    return _save(training_curves_figure(history, metric, **keywords), path)


def _class_labels(actual, predicted, classes: Sequence[str] | None) -> list[str]:
    """``classes`` in their order, then any other label seen, sorted."""
    known = [str(c) for c in classes] if classes is not None else []
    seen = set(np.asarray(actual).astype(str)) | set(np.asarray(predicted).astype(str))
    return known + sorted(seen - set(known))


def confusion_matrix_figure(
    actual,
    predicted,
    title: str,
    *,
    classes: Sequence[str] | None = None,
    variable: str | None = None,
):
    """Counts of each (actual, predicted) pair, shaded by the share of the actual class (rows
    sum to 1, so the diagonal reads as each class's recall); accuracy, F1 and n under the title.

    ``classes`` orders the rows and columns (labels seen but not listed follow, sorted).
    """
    actual = np.asarray(actual).astype(str)
    predicted = np.asarray(predicted).astype(str)
    labels = _class_labels(actual, predicted, classes)
    counts = skm.confusion_matrix(actual, predicted, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    side = max(4.5, 0.55 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=110)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if shares[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=9)
    ticks = np.arange(len(labels))
    slanted = max(map(len, labels), default=0) > 4
    ax.set_xticks(ticks, labels, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel(axis_label("predicted", variable))
    ax.set_ylabel(axis_label("actual", variable))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    subtitle = format_metrics(classification_metrics(actual, predicted)) if len(actual) else "no samples"
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    fig.tight_layout()
    return fig


def save_confusion_matrix(actual, predicted, path: str | Path, title: str, **keywords) -> Path:
    """Write :func:`confusion_matrix_figure` (same keywords) as PNG."""
    return _save(confusion_matrix_figure(actual, predicted, title, **keywords), path)


def roc_curve_figure(actual, probabilities: np.ndarray, classes: Sequence[str], title: str):
    """The ROC curve of a two-class problem, ``classes[1]`` the positive class, AUC in the legend.

    ``probabilities [n, 2]`` holds the columns in the order of ``classes``. Samples of one class
    only (or with labels outside ``classes``) have no curve; the figure then says so.
    """
    actual = np.asarray(actual).astype(str)
    auc = roc_auc(actual, probabilities, classes)  # checks two classes and the matrix shape
    negative, positive = (str(c) for c in classes)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    if np.isfinite(auc):
        fpr, tpr, _ = skm.roc_curve(actual == positive, np.asarray(probabilities, dtype=float)[:, 1])
        ax.plot(fpr, tpr, lw=2, color=_BLUE, label=f"{positive} vs {negative} (AUC {auc:.3f})")
    else:
        ax.text(0.5, 0.35, "no curve: needs samples of both classes", ha="center", color=_GREY)
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="#555555", label="chance (AUC 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 − specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(f"{title}\npositive class: {positive} · n {len(actual)}", fontsize=10)
    ax.legend(loc="lower right", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_roc_curve(actual, probabilities, classes, path: str | Path, title: str) -> Path:
    """Write :func:`roc_curve_figure` as PNG."""
    return _save(roc_curve_figure(actual, probabilities, classes, title), path)


def save_classification_plots(
    frame: pd.DataFrame,
    confusion_path: str | Path,
    roc_path: str | Path,
    title: str,
    *,
    variable: str | None = None,
) -> tuple[Path, Path | None]:
    """From a classification predictions frame (:mod:`aam_core.predictions` layout): the
    confusion matrix, and — when it holds probabilities of two classes — the ROC curve.

    Returns the two paths written (None for an ROC curve not drawn).
    """
    probabilities = read_probabilities(frame)
    classes = None if probabilities is None else probabilities[1]
    confusion = save_confusion_matrix(
        frame["actual"], frame["predicted"], confusion_path, title, classes=classes, variable=variable
    )
    roc = None
    if probabilities is not None and len(probabilities[1]) == 2:
        roc = save_roc_curve(frame["actual"], *probabilities, roc_path, title)
    return confusion, roc

