"""``log-minmax`` and ``log-zscore``: ``log(y + 1)`` first, then min-max or z-score scaling.

For skewed, non-negative targets (counts, concentrations, ages). Every target must be > -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aam_core.errors import DataError
from aam_core.interfaces import TargetTransform
from aam_plugins.transforms.base import FittedTransform, as_target, check_varies
from aam_plugins.transforms.minmax import MinMaxTransform
from aam_plugins.transforms.zscore import ZScoreTransform


class _LogTransform(FittedTransform):
    """``inner(log1p(y))``; the inner scaling is fitted on the log values."""

    #: The scaling applied after the log; subclasses set it.
    inner_class: type[TargetTransform]

    def __init__(self, options: None = None):
        super().__init__(options)
        self.inner = self.inner_class()

    def _log(self, y: np.ndarray) -> np.ndarray:
        y = as_target(y, self.name)
        bad = y <= -1
        if bad.any():
            raise DataError(
                f"{self.name}: log(y + 1) needs every target > -1, but {int(bad.sum())} value(s) "
                f"are <= -1 (smallest {y.min():g}); use 'minmax' or 'zscore' instead."
            )
        return np.log1p(y)

    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> _LogTransform:
        del categories  # one scaling for every row
        logged = self._log(y)
        check_varies(as_target(y, self.name), self.name)  # raw values: the message shows units
        self.inner.fit(logged)
        self._fitted = True
        return self

    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return self.inner.transform(self._log(y))

    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return np.expm1(self.inner.inverse_transform(y))

    def state_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ("inner",))
        self.inner.load_state_dict(state["inner"])
        self._fitted = True


class LogMinMaxTransform(_LogTransform):
    """``log(y + 1)`` scaled to [0, 1] over the training range."""

    name = "log-minmax"
    inner_class = MinMaxTransform


class LogZScoreTransform(_LogTransform):
    """``log(y + 1)`` centred and scaled by the training mean and std."""

    name = "log-zscore"
    inner_class = ZScoreTransform
