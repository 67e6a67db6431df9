"""``zscore``: centre the target on the training mean and scale by the training std."""

from __future__ import annotations

from typing import Any

import numpy as np

from aam_plugins.transforms.base import FittedTransform, as_target, check_varies


class ZScoreTransform(FittedTransform):
    """``(y - mean) / std`` with the training targets' mean and population std (ddof=0)."""

    name = "zscore"

    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> ZScoreTransform:
        del categories  # one mean and std for every row
        y = as_target(y, self.name)
        check_varies(y, self.name)
        self.mean = float(y.mean())
        self.std = float(y.std())
        self._fitted = True
        return self

    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return (as_target(y, self.name) - self.mean) / self.std

    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return as_target(y, self.name, finite=False) * self.std + self.mean

    def state_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("mean", "std"))
        self.mean = float(state["mean"])
        self.std = float(state["std"])
        self._fitted = True
