"""Categorical metadata → integer codes; code 0 is reserved for unknown or missing values."""

from __future__ import annotations

import warnings

import attrs
import numpy as np

from aam_core.data.dataset import Dataset

UNKNOWN = 0


@attrs.define
class CategoryEncoder:
    """Per-column vocabularies learned from the training split."""

    columns: list[str]
    vocab: dict[str, list[str]] = attrs.field(factory=dict)

    @classmethod
    def fit(cls, dataset: Dataset, columns: list[str]) -> CategoryEncoder:
        vocab = {}
        for col in columns:
            values = dataset.column(col)
            vocab[col] = sorted({v for v in values if v != ""})
        return cls(columns=list(columns), vocab=vocab)

    @property
    def sizes(self) -> list[int]:
        """Embedding rows per column, the reserved unknown row included."""
        return [len(self.vocab[c]) + 1 for c in self.columns]

    def locate(self, column: str | None) -> tuple[int, int] | None:
        """``(position among the codes, number of codes)`` of ``column``; None for None."""
        if column is None:
            return None
        index = self.columns.index(column)
        return index, self.sizes[index]

    def encode(self, dataset: Dataset) -> np.ndarray:
        """``int64 [n, K]``; unseen categories become 0, with one warning per column."""
        out = np.zeros((len(dataset), len(self.columns)), dtype=np.int64)
        for k, col in enumerate(self.columns):
            index = {v: i for i, v in enumerate(self.vocab[col], start=1)}
            values = dataset.column(col)
            codes = np.array([index.get(v, UNKNOWN) for v in values], dtype=np.int64)
            missed = values[(codes == UNKNOWN) & (values != "")]
            if len(missed):
                n, unseen = len(missed), sorted(set(missed))
                warnings.warn(
                    f"{n} samples have a '{col}' value unseen in training (e.g. '{unseen[0]}'); "
                    "they use the reserved unknown category.",
                    stacklevel=2,
                )
            out[:, k] = codes
        return out

    def state_dict(self) -> dict:
        return {"columns": list(self.columns), "vocab": {c: list(v) for c, v in self.vocab.items()}}

    @classmethod
    def from_state(cls, state: dict) -> CategoryEncoder:
        return cls(columns=list(state["columns"]), vocab={c: list(v) for c, v in state["vocab"].items()})
