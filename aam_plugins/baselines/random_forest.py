"""``random-forest``: scikit-learn's random forest on the samples × ASVs matrix.

The honest yardstick for AAM: no sequences, no attention, just per-ASV abundances. Regression uses
``RandomForestRegressor``, classification ``RandomForestClassifier`` (string labels are fine),
which also gives class probabilities (``predict_proba``, its trees' leaf class fractions averaged).
Both rank the ASVs they used (``feature_importances``, mean decrease in impurity).

``--max-features`` takes what scikit-learn takes, written as text: ``sqrt``, ``log2``, ``all``
(every feature at every split), a fraction in (0, 1] such as ``0.3``, or a whole number of
features such as ``50`` — or ``oob``, the default: one forest per choice in :data:`OOB_CHOICES`,
each scored by its out-of-bag error on the samples it was fitted on (MAE for regression, error
rate for classification), and the best kept. The choice is tuned like AAM's best epoch, on samples
the reported score never sees, so the yardstick is not handicapped. ``sqrt``, the default before,
was: among thousands of mostly-absent ASVs a split rarely gets to try the informative ones. On
oral-age's fixed split it scored 5.26 years of validation MAE where ``oob`` (which kept ``all``)
scored 4.68; in nested 5-fold CV 5.39 against 4.90 (``bench/accuracy_sources.py``).
"""

from __future__ import annotations

import logging
import warnings

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
#: ``--max-features oob`` tries these and keeps the forest with the lowest out-of-bag error.
OOB_CHOICES = ("sqrt", "0.1", "0.33", "all")
TUNED = "oob"

log = logging.getLogger("aam")


def parse_max_features(text: str, flag: str = "--max-features") -> str | float | int | None:
    """``sqrt``/``log2`` stay names, ``all`` → None, ``0.3`` → fraction, ``50`` → count
    (``oob`` is not one value but a choice among several: see :class:`RandomForestBaseline`)."""
    value = str(text).strip().lower()
    if value in _NAMED_MAX_FEATURES:
        return _NAMED_MAX_FEATURES[value]
    problem = (
        f"{flag} must be oob, sqrt, log2, all, a fraction in (0, 1] or a whole number of "
        f"features (at least 1), got '{text}'."
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
    if str(value).strip().lower() != TUNED:
        parse_max_features(value, flag_name(attribute))


def _n_jobs(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value == 0:
        raise ConfigError(f"{flag_name(attribute)} must be a positive count or -1 (every core), got 0.")


@attrs.frozen
class RandomForestOptions:
    """Options of the ``random-forest`` baseline."""

    #: Trees in the forest.
    n_estimators: int = attrs.field(default=500, validator=positive)
    #: Features tried at each split: oob (the best of sqrt, 0.1, 0.33 and all by out-of-bag
    #: error), sqrt, log2, all, a fraction (0.3) or a count (50).
    max_features: str = attrs.field(default=TUNED, converter=str, validator=_check_max_features)
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
        self.tuned = self.options.max_features.strip().lower() == TUNED
        #: ``--max-features oob``: each choice's out-of-bag error, and the one kept (set by fit)
        self.oob_errors: dict[str, float] = {}
        self.max_features = None if self.tuned else self.options.max_features
        self.model = self._forest(OOB_CHOICES[0] if self.tuned else self.options.max_features, oob=self.tuned)

    def _forest(self, max_features: str, oob: bool):
        model_class = RandomForestClassifier if self.task == "classification" else RandomForestRegressor
        return model_class(
            n_estimators=self.options.n_estimators,
            max_features=parse_max_features(max_features),
            random_state=self.options.random_seed,
            n_jobs=self.options.n_jobs,
            oob_score=oob,
        )

    def _oob_error(self, model, y: np.ndarray) -> float:
        """MAE (regression) or error rate (classification) of the out-of-bag predictions, over
        the samples some tree left out (with few trees a sample may be in every bootstrap)."""
        if self.task == "classification":
            votes = model.oob_decision_function_
            seen = np.isfinite(votes).all(axis=1) & (votes.sum(axis=1) > 0)
            return float((model.classes_[votes[seen].argmax(axis=1)] != y[seen]).mean())
        predicted = model.oob_prediction_.reshape(len(y))
        seen = np.isfinite(predicted)
        return float(np.abs(predicted[seen] - y[seen]).mean())

    def fit(self, x: np.ndarray, y: np.ndarray) -> RandomForestBaseline:
        y = np.asarray(y)
        if self.task == "classification":
            y = y.astype(str)
        else:
            y = y.astype(float)
        if not self.tuned:
            self.model.fit(x, y)
            return self
        best = None
        for choice in OOB_CHOICES:
            model = self.model if choice == OOB_CHOICES[0] else self._forest(choice, oob=True)
            with warnings.catch_warnings():  # "some inputs do not have OOB scores": handled above
                warnings.simplefilter("ignore", UserWarning)
                model.fit(x, y)
            self.oob_errors[choice] = self._oob_error(model, y)
            if best is None or self.oob_errors[choice] < self.oob_errors[best[0]]:
                best = (choice, model)
        self.max_features, self.model = best
        what = "error rate" if self.task == "classification" else "MAE"
        tried = ", ".join(f"{choice} {error:.4g}" for choice, error in self.oob_errors.items())
        log.info("random-forest: --max-features %s kept (out-of-bag %s: %s).", self.max_features, what, tried)
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
