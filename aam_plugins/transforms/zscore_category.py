"""``zscore-category``: z-score within each category of the ``--normalize-by`` column.

Each category gets the mean and population std of its own training rows. A category with a single
training row, or whose rows all share one value, has no spread of its own: it keeps its own mean
and borrows the global std. A category never seen in training uses the global mean and std, with
an :class:`UnseenCategoryWarning`. A hidden category (a ``None`` label: the row is predicted
without its categories) uses them too, silently: the caller chose to hide it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from aam_core.errors import ConfigError
from aam_plugins.transforms.base import FittedTransform, as_target, check_varies

#: How many unseen category names a warning spells out.
_NAMED_IN_WARNING = 5


class UnseenCategoryWarning(UserWarning):
    """A category at transform time that the training split did not contain."""


class ZScoreCategoryTransform(FittedTransform):
    """``(y - mean[c]) / std[c]`` with statistics per category ``c`` of the training rows."""

    name = "zscore-category"
    uses_categories = True

    def _categories(self, categories: np.ndarray | None, n: int) -> np.ndarray:
        if categories is None:
            raise ConfigError(
                f"Target transform '{self.name}' needs a category per sample: "
                "set --normalize-by to a categorical metadata column."
            )
        out = np.array(categories, dtype=object)  # a copy: labels are converted below
        if out.shape != (n,):
            raise ValueError(
                f"{self.name}: expected {n} categories (one per target), got shape {out.shape}."
            )
        hidden = np.equal(out, None)
        out[~hidden] = out[~hidden].astype(str)
        return out

    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> ZScoreCategoryTransform:
        y = as_target(y, self.name)
        cats = self._categories(categories, y.size)
        if np.equal(cats, None).any():
            raise ValueError(f"{self.name}: every training row needs its category to fit on.")
        cats = cats.astype(str)
        check_varies(y, self.name)
        self.global_mean = float(y.mean())
        self.global_std = float(y.std())
        names, inverse = np.unique(cats, return_inverse=True)
        counts = np.bincount(inverse, minlength=names.size)
        means = np.bincount(inverse, weights=y, minlength=names.size) / counts
        sq_dev = np.bincount(inverse, weights=(y - means[inverse]) ** 2, minlength=names.size)
        stds = np.sqrt(sq_dev / counts)
        self.stats: dict[str, dict[str, float]] = {}
        for label, count, mean, std in zip(names, counts, means, stds, strict=True):
            own_spread = count > 1 and std > 0
            self.stats[str(label)] = {
                "mean": float(mean),
                "std": float(std) if own_spread else self.global_std,
                "count": int(count),
            }
        self._fitted = True
        return self

    def _row_stats(self, cats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-row mean and std; unseen categories fall back to the global ones, with a warning,
        and hidden ones (``None``) silently."""
        known = ~np.equal(cats, None)
        means = np.full(cats.shape, self.global_mean)
        stds = np.full(cats.shape, self.global_std)
        names, inverse = np.unique(cats[known].astype(str), return_inverse=True)
        unseen = [str(label) for label in names if label not in self.stats]
        if unseen:
            shown = ", ".join(repr(label) for label in unseen[:_NAMED_IN_WARNING])
            if len(unseen) > _NAMED_IN_WARNING:
                shown += f" and {len(unseen) - _NAMED_IN_WARNING} more"
            noun = "category" if len(unseen) == 1 else "categories"
            warnings.warn(
                f"{self.name}: {len(unseen)} {noun} not seen in training; their rows use the "
                f"global mean and std: {shown}.",
                UnseenCategoryWarning,
                stacklevel=3,
            )
        fallback = {"mean": self.global_mean, "std": self.global_std}
        per_name = [self.stats.get(str(label), fallback) for label in names]
        means[known] = np.array([s["mean"] for s in per_name], dtype=np.float64)[inverse]
        stds[known] = np.array([s["std"] for s in per_name], dtype=np.float64)[inverse]
        return means, stds

    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        self._require_fitted()
        y = as_target(y, self.name)
        mean, std = self._row_stats(self._categories(categories, y.size))
        return (y - mean) / std

    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        self._require_fitted()
        y = as_target(y, self.name, finite=False)
        mean, std = self._row_stats(self._categories(categories, y.size))
        return y * std + mean

    def state_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {
            "global_mean": self.global_mean,
            "global_std": self.global_std,
            "categories": {name: dict(stat) for name, stat in self.stats.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("global_mean", "global_std", "categories"))
        self.global_mean = float(state["global_mean"])
        self.global_std = float(state["global_std"])
        self.stats = {
            str(name): {
                "mean": float(s["mean"]),
                "std": float(s["std"]),
                "count": int(s.get("count", 0)),
            }
            for name, s in state["categories"].items()
        }
        self._fitted = True
