"""Metrics in original units, shared by training, baselines and ``aam evaluate``."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


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


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and n."""
    actual = np.asarray(actual).astype(str)
    predicted = np.asarray(predicted).astype(str)
    return {
        "accuracy": float(skm.accuracy_score(actual, predicted)),
        "f1": float(skm.f1_score(actual, predicted, average="macro", zero_division=0)),
        "n": int(len(actual)),
    }


def compute_metrics(actual: np.ndarray, predicted: np.ndarray, classifier: bool) -> dict[str, float]:
    return (classification_metrics if classifier else regression_metrics)(actual, predicted)


#: How each metric is labelled wherever a person reads it (console, tables, plots).
METRIC_LABELS = {"mae": "MAE", "rmse": "RMSE", "r2": "R²", "accuracy": "accuracy", "f1": "F1", "n": "n"}


def format_metrics(values: dict[str, float], order: tuple[str, ...] = tuple(METRIC_LABELS)) -> str:
    """``MAE 5.12 · RMSE 6.80 · R² 0.41 · n 507`` (or accuracy / F1), in ``order``."""
    parts = []
    for key in order:
        label = METRIC_LABELS[key]
        if key in values:
            value = values[key]
            parts.append(f"{label} {value}" if key == "n" else f"{label} {value:.3f}")
    return " · ".join(parts)
