"""Rank agreement between global importances: AAM against the random forest, or two methods.

Two importances are compared over the union of their features, a feature one of them lacks
counting as 0 there (a forest's unused ASV, an ASV the model never reads), with Spearman's rank
correlation.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import stats

from aam_core.baseline import feature_matrix
from aam_core.config import DataConfig
from aam_core.data.dataset import load_dataset
from aam_core.data.samples import Samples, resolve_list
from aam_core.plugins import get_plugin


def spearman(first: pd.Series, second: pd.Series) -> float:
    """Spearman correlation of two importances indexed by feature (NaN if one is constant)."""
    index = first.index.union(second.index)
    a = first.reindex(index, fill_value=0.0).to_numpy(dtype=float)
    b = second.reindex(index, fill_value=0.0).to_numpy(dtype=float)
    if len(index) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def forest_importance(
    table: str | os.PathLike,
    metadata: str | os.PathLike,
    metadata_column: str,
    samples: Samples,
    *,
    sequences: str | os.PathLike | None = None,
    classifier: bool = False,
    options: dict | None = None,
) -> pd.Series:
    """The ``random-forest`` baseline fitted on ``samples`` (relative abundances, as ``aam
    baseline`` fits it) and its impurity importance per feature ID, highest first."""
    config = DataConfig(
        table=str(table),
        metadata=str(metadata),
        metadata_column=metadata_column,
        sequences=None if sequences is None else str(sequences),
    )
    data = load_dataset(config, classifier=classifier)
    rows = data.rows_of(resolve_list(samples, data, "training"))
    used = np.flatnonzero(np.asarray((data.counts[rows] != 0).sum(axis=0)).ravel())
    x = feature_matrix(data.counts, "relative")[rows][:, used].toarray()
    spec = get_plugin("baseline", "random-forest")
    model = spec.factory(
        task="classification" if classifier else "regression", options=spec.make_options(options)
    )
    model.fit(x, data.target[rows])
    series = pd.Series(
        model.feature_importances(), index=data.feature_ids[used].astype(str), name="importance"
    )
    return series.sort_values(ascending=False)
