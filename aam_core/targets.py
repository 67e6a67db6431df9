"""How the target column becomes model units and back: class indices, or a fitted transform.

Shared by training (encoding targets, decoding validation outputs) and inference (decoding
predictions), so neither imports the other.
"""

from __future__ import annotations

import attrs
import numpy as np

from aam_core.interfaces import TargetTransform


@attrs.define
class TargetEncoding:
    """Classification labels or a regression transform, fitted on the training split."""

    classes: list[str] | None  # classification labels (index = class id), None for regression
    transform: TargetTransform | None  # regression only
    transform_categories: np.ndarray | None  # per-row labels for per-category transforms

    @property
    def classifier(self) -> bool:
        return self.classes is not None

    def hidden(self) -> TargetEncoding:
        """The encoding of rows predicted with their categories hidden (the unknown-category
        branch): a per-category transform uses the statistics that need no category, so the
        branch learns a target it can know, and its output decodes without the category."""
        if self.transform_categories is None:
            return self
        return attrs.evolve(self, transform_categories=np.full(len(self.transform_categories), None, dtype=object))

    def encode(self, dataset_target: np.ndarray) -> np.ndarray:
        if self.classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            return np.array([index.get(v, -1) for v in dataset_target], dtype=np.int64)
        return self.transform.transform(dataset_target, self.transform_categories).astype(np.float32)

    def decode(self, output: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Model output for ``rows`` → original units (or labels)."""
        if self.classes is not None:
            return np.asarray(self.classes, dtype=object)[output.argmax(axis=1)]
        cats = None if self.transform_categories is None else self.transform_categories[rows]
        return self.transform.inverse_transform(output[:, 0].astype(np.float64), cats)

    def probabilities(self, output: np.ndarray) -> np.ndarray | None:
        """Class probabilities ``[n, n_classes]`` from logits; None for regression."""
        if self.classes is None:
            return None
        shifted = output - output.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
