"""``none``: the target as it is (still validated: NaN and inf are rejected)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aam_core.errors import DataError
from aam_plugins.transforms.base import FittedTransform, as_target


class IdentityTransform(FittedTransform):
    """Leaves the target unchanged (still validated: NaN and inf are rejected)."""

    name = "none"

    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> IdentityTransform:
        del categories  # no per-category statistics
        if as_target(y, self.name).size == 0:
            raise DataError(f"{self.name}: no training targets to fit.")
        self._fitted = True
        return self

    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return as_target(y, self.name)

    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        del categories
        self._require_fitted()
        return as_target(y, self.name, finite=False)

    def state_dict(self) -> dict[str, Any]:
        self._require_fitted()
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state, ())
        self._fitted = True
