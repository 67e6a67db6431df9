"""Metrics in original units, shared by training, baselines and ``aam evaluate``.

Every function returns plain Python numbers (JSON-safe): floats, ints and strings, never numpy
types. A metric that is undefined on the given samples (R² of one sample, ROC AUC when the
samples hold one class) is ``nan``; files that must be strict JSON turn it into ``null``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from aam_core.errors import ConfigError, DataError


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² and n."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    r2 = float(skm.r2_score(actual, predicted)) if len(actual) > 1 else float("nan")
    return {
        "mae": float(skm.mean_absolute_error(actual, predicted)),
        "rmse": float(np.sqrt(skm.mean_squared_error(actual, predicted))),
        "r2": r2,
        "n": int(len(actual)),
    }


def _labels(values) -> np.ndarray:
    return np.asarray(values).astype(str)


def check_probabilities(
    probabilities: np.ndarray, classes: Sequence[str] | None, n: int
) -> tuple[np.ndarray, list[str]]:
    """``probabilities [n, len(classes)]`` as floats in [0, 1], and the classes as text."""
    if classes is None:
        raise ConfigError("Class probabilities need `classes`, the label of each column.")
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DataError(f"Class labels repeat: {', '.join(classes)}.")
    matrix = np.asarray(probabilities, dtype=float)
    if matrix.shape != (n, len(classes)):
        raise DataError(
            f"Class probabilities have shape {matrix.shape}; expected ({n}, {len(classes)}): "
            f"one row per sample, one column per class ({', '.join(classes)})."
        )
    if not np.isfinite(matrix).all() or (matrix < 0).any() or (matrix > 1).any():
        raise DataError("Class probabilities must be finite numbers between 0 and 1.")
    return matrix, classes


def roc_auc(actual: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> float:
    """Area under the ROC curve of a two-class problem, ``classes[1]`` the positive class.

    ``nan`` when the samples do not hold both classes, or hold a label outside ``classes``.
    """
    actual = _labels(actual)
    probabilities, classes = check_probabilities(probabilities, classes, len(actual))
    if len(classes) != 2:
        raise ConfigError(f"ROC AUC needs two classes, got {len(classes)}: {', '.join(classes)}.")
    if not np.isin(actual, classes).all() or len(set(actual)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(actual == classes[1], probabilities[:, 1]))


def classification_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy, macro F1 and n; ``auc`` too when two classes come with their probabilities.

    ``probabilities [n, len(classes)]`` holds one column per class, in the order of ``classes``.
    Macro F1 averages over the labels found in ``actual`` and ``predicted``. Per-class numbers are
    in :func:`classification_report` (kept apart so that every value here is one number).
    """
    actual = _labels(actual)
    predicted = _labels(predicted)
    values: dict[str, float] = {
        "accuracy": float(skm.accuracy_score(actual, predicted)),
        "f1": float(skm.f1_score(actual, predicted, average="macro", zero_division=0)),
        "n": int(len(actual)),
    }
    if probabilities is not None:
        matrix, classes = check_probabilities(probabilities, classes, len(actual))
        if len(classes) == 2:
            values["auc"] = roc_auc(actual, matrix, classes)
    elif classes is not None:
        raise ConfigError("`classes` names the columns of `probabilities`; give both or neither.")
    return values


def classification_report(
    actual: np.ndarray, predicted: np.ndarray, classes: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """``{label: {"precision", "recall", "f1", "support"}}`` per class.

    ``classes`` fixes the labels and their order; by default every label of ``actual`` and
    ``predicted``, sorted. A class never predicted has precision 0; one absent from ``actual``
    has recall 0 and support 0.
    """
    actual = _labels(actual)
    predicted = _labels(predicted)
    labels = [str(c) for c in (classes if classes is not None else sorted({*actual, *predicted}))]
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        actual, predicted, labels=labels, zero_division=0
    )
    return {
        label: {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Text cells as aligned columns: the first left-aligned, the others right-aligned."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join([line[0].ljust(widths[0]), *cells]).rstrip())
    return "\n".join(out)


def format_report(report: dict[str, dict[str, float]]) -> str:
    """The per-class report as an aligned text table (one header line, one line per class)."""
    rows = [
        [label, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
        for label, v in report.items()
    ]
    return format_table(["class", "precision", "recall", "F1", "support"], rows)


def compute_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    classifier: bool,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, float]:
    """:func:`classification_metrics` or :func:`regression_metrics`; probabilities only classify."""
    if classifier:
        return classification_metrics(actual, predicted, probabilities, classes)
    if probabilities is not None or classes is not None:
        raise ConfigError("Class probabilities apply to classification only.")
    return regression_metrics(actual, predicted)


#: How each metric is labelled wherever a person reads it (console, tables, plots).
METRIC_LABELS = {
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "accuracy": "accuracy",
    "f1": "F1",
    "auc": "AUC",
    "n": "n",
}

#: Metrics where a larger value is better (the others: smaller is better).
HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "f1", "auc"})


def format_metrics(values: dict[str, float], order: tuple[str, ...] = tuple(METRIC_LABELS)) -> str:
    """``MAE 5.12 · RMSE 6.80 · R² 0.41 · n 507`` (or accuracy / F1 / AUC), in ``order``."""
    parts = []
    for key in order:
        label = METRIC_LABELS[key]
        if key in values:
            value = values[key]
            parts.append(f"{label} {value}" if key == "n" else f"{label} {value:.3f}")
    return " · ".join(parts)
