"""What a method returns per batch, and the explanation of all samples put together.

Global importance of a feature is the mean over the explained samples of its absolute
attribution, counting 0 for a sample that lacks the ASV or where the model does not read it
(beyond ``--max-asvs``): an ASV matters globally when it moves many samples' predictions a lot.
Its signed mean effect is the mean attribution over the same samples. For attention the
importance is the mean attention-pooling weight, with the same denominator.
"""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
from scipy import sparse

ATTRIBUTION, ATTENTION = "attribution", "attention"


@attrs.define
class BatchResult:
    """One batch of samples: a value per ASV read, in model and original units."""

    values_model: list[np.ndarray]
    values: list[np.ndarray]
    prediction_model: np.ndarray  # [B]
    prediction: np.ndarray  # [B] original units (or the predicted class's probability)
    baseline_model: np.ndarray  # [B] the reference the values are measured from (NaN: none)
    baseline: np.ndarray  # [B]
    predicted_class: list[str] | None = None


@attrs.define(eq=False)
class Explanation:
    """Per-sample, per-ASV values of one method over the explained samples.

    The entries of sample ``i`` are ``slice(offsets[i], offsets[i + 1])`` of the flat arrays,
    in the order the model reads that sample's ASVs.
    """

    method: str
    kind: str  # ATTRIBUTION or ATTENTION
    units: str  # how a value reads ("predicted age (original units)", ...)
    baseline_meaning: str
    sample_ids: np.ndarray  # [N]
    rows: np.ndarray  # [N] dataset rows
    offsets: np.ndarray  # [N + 1]
    features: np.ndarray  # [E] dataset feature index
    abundance: np.ndarray  # [E] relative abundance (share of the sample's reads)
    values: np.ndarray  # [E] original units
    values_model: np.ndarray  # [E] model units
    prediction: np.ndarray  # [N]
    prediction_model: np.ndarray
    baseline: np.ndarray
    baseline_model: np.ndarray
    feature_ids: np.ndarray  # [F] of the dataset
    sequences: np.ndarray  # [F]
    taxonomy: np.ndarray  # [F]
    predicted_class: np.ndarray | None = None  # [N] labels, classifiers only

    @classmethod
    def collect(
        cls,
        parts: list[BatchResult],
        *,
        method: str,
        kind: str,
        units: str,
        baseline_meaning: str,
        sample_ids: np.ndarray,
        rows: np.ndarray,
        features: list[np.ndarray],
        abundance: list[np.ndarray],
        feature_ids: np.ndarray,
        sequences: np.ndarray,
        taxonomy: np.ndarray,
    ) -> Explanation:
        """Join the batches; ``features``/``abundance`` hold one array per sample."""

        def flat(name: str) -> np.ndarray:
            return np.concatenate([v for p in parts for v in getattr(p, name)] or [np.zeros(0)])

        def per_sample(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts]).astype(np.float64)

        lengths = np.array([len(f) for f in features], dtype=np.int64)
        classes = [c for p in parts for c in (p.predicted_class or [])]
        return cls(
            method=method,
            kind=kind,
            units=units,
            baseline_meaning=baseline_meaning,
            sample_ids=np.asarray(sample_ids, dtype=object),
            rows=np.asarray(rows, dtype=np.int64),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            features=np.concatenate(features or [np.zeros(0, dtype=np.int64)]).astype(np.int64),
            abundance=np.concatenate(abundance or [np.zeros(0)]).astype(np.float64),
            values=flat("values").astype(np.float64),
            values_model=flat("values_model").astype(np.float64),
            prediction=per_sample("prediction"),
            prediction_model=per_sample("prediction_model"),
            baseline=per_sample("baseline"),
            baseline_model=per_sample("baseline_model"),
            feature_ids=np.asarray(feature_ids, dtype=object),
            sequences=np.asarray(sequences, dtype=object),
            taxonomy=np.asarray(taxonomy, dtype=object),
            predicted_class=np.asarray(classes, dtype=object) if classes else None,
        )

    def __len__(self) -> int:
        return len(self.sample_ids)

    def entries(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def index_of(self, sample_id: str) -> int:
        where = np.flatnonzero(self.sample_ids == str(sample_id))
        if not len(where):
            raise KeyError(sample_id)
        return int(where[0])

    def matrix(self, model_units: bool = False) -> sparse.csr_matrix:
        """Samples × dataset features ``[N, F]`` of the values (0 where not read)."""
        data = self.values_model if model_units else self.values
        return sparse.csr_matrix(
            (data, self.features, self.offsets), shape=(len(self), len(self.feature_ids))
        )

    def _per_feature(self, data: np.ndarray) -> np.ndarray:
        total = np.bincount(self.features, weights=data, minlength=len(self.feature_ids))
        return total / max(len(self), 1)

    def read_by(self) -> np.ndarray:
        """``[F]`` how many explained samples the model reads each feature in."""
        return np.bincount(self.features, minlength=len(self.feature_ids))

    def importance(self) -> pd.Series:
        """Global importance per feature ID, highest first (features read in no explained
        sample are left out); ties by feature ID."""
        score = self._per_feature(np.abs(self.values))
        keep = np.flatnonzero(self.read_by() > 0)
        series = pd.Series(
            score[keep], index=pd.Index(self.feature_ids[keep].astype(str), name="feature")
        )
        order = np.lexsort((series.index.to_numpy(), -series.to_numpy()))
        return series.iloc[order].rename("importance")

    def mean_effect(self) -> pd.Series:
        """Signed mean value per feature ID (same samples and denominator as the importance)."""
        effect = self._per_feature(self.values)
        return pd.Series(effect, index=self.feature_ids.astype(str), name="mean_effect")

    def residual(self) -> np.ndarray:
        """``[N]`` prediction − baseline − Σ values: 0 for an additive method (IG up to its
        integration error); for occlusion, the interactions single removals do not see."""
        sums = (
            np.add.reduceat(self.values, self.offsets[:-1])
            if len(self.values)
            else np.zeros(len(self))
        )
        sums[np.diff(self.offsets) == 0] = 0.0
        return self.prediction - self.baseline - sums
