"""What every built-in transform shares.

:class:`FittedTransform` validates targets, remembers whether ``fit`` (or ``load_state_dict``) ran
and checks that a saved state has the keys it needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aam_core.errors import CheckpointError, DataError
from aam_core.interfaces import TargetTransform


def as_target(y: Any, name: str, finite: bool = True) -> np.ndarray:
    """``y`` as a new 1-D float64 array; with ``finite``, NaN or inf is a :class:`DataError`.

    Model outputs going through ``inverse_transform`` are not checked (``finite=False``): a
    diverged model's NaN should reach the metrics, not stop the run here.
    """
    out = np.array(y, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of targets, got shape {out.shape}.")
    bad = ~np.isfinite(out)
    if finite and bad.any():
        raise DataError(
            f"{name}: the target has {int(bad.sum())} missing or infinite value(s) (NaN/inf); "
            "drop or fill them before training."
        )
    return out


def check_varies(y: np.ndarray, name: str) -> None:
    """A :class:`DataError` when the training target is empty or has a single value."""
    if y.size == 0:
        raise DataError(f"{name}: no training targets to fit.")
    if not y.max() > y.min():
        raise DataError(f"{name}: target is constant (value {y[0]:g}); nothing to learn.")


class FittedTransform(TargetTransform):
    """Shared plumbing: the fitted flag and state-key checks. Subclasses set ``name``."""

    #: The kebab-case name used in messages (the registered name).
    name = "transform"

    def __init__(self, options: None = None):
        del options  # the built-in transforms take no options
        self._fitted = False

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit() on the training targets "
                "or load_state_dict() first."
            )

    def _check_state(self, state: dict[str, Any], keys: tuple[str, ...]) -> None:
        missing = [key for key in keys if key not in state]
        if missing:
            raise CheckpointError(
                f"Saved state for target transform '{self.name}' lacks {', '.join(missing)}; "
                "was the checkpoint written with another transform?"
            )
