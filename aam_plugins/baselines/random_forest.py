"""``random-forest``: scikit-learn's random forest on the samples × ASVs matrix.

The honest yardstick for AAM: no sequences, no attention, just per-ASV abundances. Regression uses
``RandomForestRegressor``, classification ``RandomForestClassifier`` (string labels are fine),
which also gives class probabilities (``predict_proba``, its trees' leaf class fractions averaged).
Both rank the ASVs they used (``feature_importances``, mean decrease in impurity).

``--max-features`` takes what scikit-learn takes, written as text: ``sqrt``, ``log2``, ``all``
(every feature at every split), a fraction in (0, 1] such as ``0.3``, or a whole number of
features such as ``50``.
"""

from __future__ import annotations

import attrs
import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from aam_core import hookimpl
from aam_core.config import flag_name, positive
from aam_core.errors import ConfigError
from aam_core.interfaces import Baseline
from aam_core.specs import BaselineSpec

TASKS = ("classification", "regression")
_NAMED_MAX_FEATURES = {"sqrt": "sqrt", "log2": "log2", "all": None}


def parse_max_features(text: str, flag: str = "--max-features") -> str | float | int | None:
    """``sqrt``/``log2`` stay names, ``all`` → None, ``0.3`` → fraction, ``50`` → count."""
    value = str(text).strip().lower()
    if value in _NAMED_MAX_FEATURES:
        return _NAMED_MAX_FEATURES[value]
    problem = (
        f"{flag} must be sqrt, log2, all, a fraction in (0, 1] or a whole number of features "
        f"(at least 1), got '{text}'."
    )
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(problem) from None
    if "." not in value and "e" not in value:  # written as a whole number: a count of features
        if number < 1:
            raise ConfigError(problem)
        return int(number)
    if not 0.0 < number <= 1.0:
        raise ConfigError(problem)
    return number


def _check_max_features(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    parse_max_features(value, flag_name(attribute))


def _n_jobs(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value == 0:
        raise ConfigError(f"{flag_name(attribute)} must be a positive count or -1 (every core), got 0.")


@attrs.frozen
class RandomForestOptions:
    """Options of the ``random-forest`` baseline."""

    #: Trees in the forest.
    n_estimators: int = attrs.field(default=500, validator=positive)
    #: Features tried at each split: sqrt, log2, all, a fraction (0.3) or a count (50).
    max_features: str = attrs.field(default="sqrt", converter=str, validator=_check_max_features)
    #: Seed of the bootstrap and feature sampling.
    random_seed: int = 42
    #: Worker processes; -1 uses every core.
    n_jobs: int = attrs.field(default=-1, validator=_n_jobs)


class RandomForestBaseline(Baseline):
    """A random forest regressor or classifier, chosen by ``task``."""

    def __init__(self, task: str = "regression", options: RandomForestOptions | None = None):
        if task not in TASKS:
            raise ConfigError(f"Unknown baseline task '{task}'. Available: {', '.join(TASKS)}.")
        self.task = task
        self.options = options or RandomForestOptions()
        model_class = RandomForestClassifier if task == "classification" else RandomForestRegressor
        self.model = model_class(
            n_estimators=self.options.n_estimators,
            max_features=parse_max_features(self.options.max_features),
            random_state=self.options.random_seed,
            n_jobs=self.options.n_jobs,
        )

    def fit(self, x: np.ndarray, y: np.ndarray) -> RandomForestBaseline:
        y = np.asarray(y)
        if self.task == "classification":
            y = y.astype(str)
        else:
            y = y.astype(float)
        self.model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x))

    @property
    def classes_(self) -> list[str] | None:
        """The labels the classifier saw in ``fit``, sorted (scikit-learn's order)."""
        if self.task != "classification" or not hasattr(self.model, "classes_"):
            return None
        return [str(c) for c in self.model.classes_]

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        """Its trees' leaf class fractions, averaged (columns in ``classes_`` order)."""
        if self.task != "classification":
            return None
        return np.asarray(self.model.predict_proba(x), dtype=float)

    def feature_importances(self) -> np.ndarray:
        """Mean decrease in impurity per feature (scikit-learn's ``feature_importances_``)."""
        return np.asarray(self.model.feature_importances_, dtype=float)


def factory(
    task: str = "regression", options: RandomForestOptions | None = None
) -> RandomForestBaseline:
    """Build the baseline for ``task`` (``regression`` or ``classification``)."""
    return RandomForestBaseline(task=task, options=options)


@hookimpl
def aam_baselines():
    """The random forest baseline."""
    return [
        BaselineSpec(
            name="random-forest",
            factory=factory,
            description="scikit-learn random forest on per-ASV abundances (regression or classification).",
            options=RandomForestOptions,
        )
    ]
