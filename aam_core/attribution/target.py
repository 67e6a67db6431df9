"""What is explained, and in which units.

Regression: the model's output, decoded to the target's original units with the checkpoint's
fitted transform (so an attribution reads "this ASV moved the predicted age by +2.1 years").
Classification: the probability of the class the model predicts for the full sample; every
perturbed copy of that sample is scored on the same class, so attributions are differences of
that one probability.
"""

from __future__ import annotations

import numpy as np
import torch

from aam_core.targets import TargetEncoding


class Target:
    """Turns model outputs into the explained score and scores into original units."""

    def __init__(self, encoding: TargetEncoding, variable: str | None = None):
        self.encoding = encoding
        self.variable = variable or "target"

    @property
    def classifier(self) -> bool:
        return self.encoding.classifier

    @property
    def units(self) -> str:
        """How a value of this target reads, for file headers and figure axes."""
        if self.classifier:
            return "probability of the predicted class"
        return f"predicted {self.variable} (original units)"

    def predicted_class(self, prediction: torch.Tensor) -> torch.Tensor | None:
        """``[R]`` class index the model predicts, or None for regression."""
        return prediction.argmax(dim=-1) if self.classifier else None

    def labels(self, classes: torch.Tensor | None) -> list[str] | None:
        """Class labels of ``classes`` (None for regression)."""
        if classes is None:
            return None
        return [str(self.encoding.classes[int(c)]) for c in classes.cpu()]

    def score(self, prediction: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """``[R]`` in model units: the regression output, or the probability of ``classes``."""
        if not self.classifier:
            return prediction[:, 0].float()
        probabilities = torch.softmax(prediction.float(), dim=-1)
        return probabilities.gather(1, classes[:, None].long())[:, 0]

    def decode(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scores ``[R]`` of dataset ``rows`` → original units (probabilities stay as they are)."""
        values = np.asarray(values, dtype=np.float64)
        if self.classifier or not len(values):
            return values
        return np.asarray(self.encoding.decode(values[:, None], np.asarray(rows)), dtype=np.float64)

    def slope(self, low: np.ndarray, high: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Original units per model unit between two scores of each row: the secant of the
        inverse transform, so a sum in model units rescaled by it equals the difference of the
        two decoded values. For an affine transform (z-score, min-max) this is its exact, constant
        scale; where the two scores nearly coincide the local derivative is used instead."""
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if self.classifier:
            return np.ones_like(low)
        step = high - low
        near = np.abs(step) < 1e-6
        a = np.where(near, high - 1e-3, low)
        b = np.where(near, high + 1e-3, high)
        return (self.decode(b, rows) - self.decode(a, rows)) / (b - a)
