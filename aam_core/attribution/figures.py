"""Figures of an explanation: the top ASVs overall, and one sample's waterfall.

``importance_figure``: the N most important ASVs (global importance, highest at the top), each a
horizontal bar of its signed mean effect, labelled by taxonomy (the most specific named ranks)
and a short hash of the sequence, so two ASVs of one genus stay apart; a dot marks the
importance (mean absolute attribution). For attention the bar is the mean weight.

``waterfall_figure``: one sample from the baseline prediction to its prediction: a step per ASV
(the N largest by absolute attribution), one step for the rest of its ASVs and, for a method
whose attributions do not add up (occlusion), one for the interactions between ASVs (for
integrated gradients, one for the integration error only where it exceeds 0.1% of the span).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aam_core.attribution.results import ATTENTION, Explanation  # noqa: E402
from aam_core.files import write_atomic  # noqa: E402

_UP, _DOWN, _GREY, _DARK = "#c0392b", "#2c7fb8", "#999999", "#333333"


def short_hash(sequence: str) -> str:
    return hashlib.md5(str(sequence).encode()).hexdigest()[:7]


def feature_label(taxonomy: str, sequence: str) -> str:
    """``Prevotella melaninogenica · 1a2b3c4``, ``f__Moraxellaceae · …`` or ``ASV 1a2b3c4``."""
    ranks = [r.strip() for r in str(taxonomy or "").split(";")]
    named = [r for r in ranks if r and r.split("__", 1)[-1].strip()]
    tag = short_hash(sequence)
    if not named:
        return f"ASV {tag}"
    last = named[-1]
    if last.startswith("s__") and len(named) > 1 and named[-2].startswith("g__"):
        name = f"{named[-2][3:]} {last[3:]}"
    elif last.startswith("g__"):
        name = last[3:]
    else:
        name = last
    return f"{name} · {tag}"


def save(fig, path: str | Path) -> Path:
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def importance_figure(explanation: Explanation, top: int = 20):
    importance = explanation.importance().iloc[:top]
    position = {str(f): i for i, f in enumerate(explanation.feature_ids)}
    where = np.array([position[f] for f in importance.index], dtype=np.int64)
    effect = explanation.mean_effect().to_numpy()[where]
    labels = [feature_label(explanation.taxonomy[i], explanation.sequences[i]) for i in where]
    n = len(where)
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.32 * max(n, 1)), dpi=110)
    y = np.arange(n)[::-1]  # most important at the top
    attention = explanation.kind == ATTENTION
    colours = [_GREY if attention else (_UP if e >= 0 else _DOWN) for e in effect]
    ax.barh(y, effect, color=colours, height=0.7)
    if not attention:
        ax.scatter(
            importance.to_numpy(),
            y,
            color=_DARK,
            s=14,
            zorder=3,
            label="importance (mean |attribution|)",
        )
        ax.axvline(0, color=_DARK, lw=0.8)
        ax.legend(loc="lower right", frameon=False, fontsize=8)
        ax.set_xlabel(f"mean effect on the {explanation.units}")
    else:
        ax.set_xlabel("mean attention-pooling weight (attention, not attribution)")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_title(
        f"Top {n} ASVs by importance ({explanation.method}, {len(explanation)} samples)",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def waterfall_figure(explanation: Explanation, sample_id: str, top: int = 10):
    """Raises ``ValueError`` for attention weights (they move no prediction)."""
    if explanation.kind == ATTENTION:
        raise ValueError("Attention weights do not add up to a prediction: no waterfall.")
    i = explanation.index_of(sample_id)
    part = explanation.entries(i)
    values = explanation.values[part]
    features = explanation.features[part]
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[:top], order[top:]
    steps = [
        (feature_label(explanation.taxonomy[f], explanation.sequences[f]), v)
        for f, v in zip(features[shown], values[shown], strict=True)
    ]
    if len(rest):
        steps.append((f"other {len(rest)} ASVs", float(values[rest].sum())))
    residual = float(explanation.residual()[i])
    if explanation.method == "occlusion":
        steps.append(("interactions (not additive)", residual))
    elif abs(residual) > 1e-3 * max(
        1.0, abs(float(explanation.prediction[i] - explanation.baseline[i]))
    ):
        steps.append(("integration error", residual))
    baseline, prediction = float(explanation.baseline[i]), float(explanation.prediction[i])
    levels = baseline + np.concatenate([[0.0], np.cumsum([d for _, d in steps])])
    low, high = min(levels.min(), prediction), max(levels.max(), prediction)
    pad = 0.12 * (high - low or max(abs(high), 1.0))
    left = low - pad  # the axis starts near the values, so small steps stay visible
    fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.32 * (len(steps) + 2)), dpi=110)
    labels = ["baseline", *[s[0] for s in steps], "prediction"]
    y = np.arange(len(labels))[::-1]
    ax.barh(y[0], baseline - left, left=left, color=_GREY, height=0.7)
    for k, (_, delta) in enumerate(steps, start=1):
        ax.barh(y[k], delta, left=levels[k - 1], color=_UP if delta >= 0 else _DOWN, height=0.7)
        ax.text(max(levels[k - 1], levels[k]), y[k], f" {delta:+.3g}", va="center", fontsize=7)
    ax.barh(y[-1], prediction - left, left=left, color=_DARK, height=0.7)
    ax.set_xlim(left, high + pad)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(explanation.units)
    ax.set_title(
        f"{sample_id}: {baseline:.3g} → {prediction:.3g} ({explanation.method})\n"
        f"baseline: {explanation.baseline_meaning}",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
