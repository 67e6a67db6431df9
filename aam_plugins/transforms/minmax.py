"""``minmax``: scale the target to [0, 1] over the training range."""

from __future__ import annotations

from typing import Any

import numpy as np

from aam_plugins.transforms.base import FittedTransform, as_target, check_varies


class MinMaxTransform(FittedTransform):
    """``(y - min) / (max - min)`` with min and max of the training targets.

    Values outside the training range map outside [0, 1]; nothing is clipped.
    """

    name = "minmax"

    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> MinMaxTransform:
        del categories  # one range for every row
        y = as_target(y, self.name)
        check_varies(y, self.name)
        self.min = float(y.min())
        self.max = float(y.max())
        self._fitted = True
        return self

    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return (as_target(y, self.name) - self.min) / (self.max - self.min)

    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return as_target(y, self.name, finite=False) * (self.max - self.min) + self.min

    def state_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {"min": self.min, "max": self.max}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("min", "max"))
        self.min = float(state["min"])
        self.max = float(state["max"])
        self._fitted = True
