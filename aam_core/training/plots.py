"""The predicted-vs-actual figure shared by AAM runs and baselines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aam_core.files import write_atomic  # noqa: E402
from aam_core.training.metrics import format_metrics, regression_metrics  # noqa: E402


def predicted_vs_actual_figure(actual: np.ndarray, predicted: np.ndarray, title: str):
    """A scatter of predictions against truth with the identity line and the metrics."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    ax.scatter(actual, predicted, s=12, alpha=0.6, edgecolors="none", color="#3465a4")
    both = np.concatenate([actual, predicted]) if len(actual) else np.array([0.0, 1.0])
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", lw=1, color="#555555", label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    subtitle = format_metrics(regression_metrics(actual, predicted)) if len(actual) else "no samples"
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_predicted_vs_actual(actual, predicted, path: str | Path, title: str) -> Path:
    """Write the figure as PNG (to a temporary name first, then renamed)."""
    fig = predicted_vs_actual_figure(actual, predicted, title)
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
