"""Exact UniFrac distances for the samples of a batch, from ``--tree`` or ``--unifrac-matrix``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aam_core.config import DataConfig
from aam_core.data.dataset import Dataset
from aam_core.errors import ConfigError


def distance_source(config: DataConfig, dataset: Dataset) -> Callable[[np.ndarray], np.ndarray]:
    """``rows → [B, B] float64`` for dataset rows: computed per batch from the tree (each
    sample's tree profile is built once; the N×N matrix never is), or looked up in a
    precomputed matrix matched to the samples by ID (a missing sample is a one-line error)."""
    if config.tree and config.unifrac_matrix:
        raise ConfigError("Give --tree or --unifrac-matrix, not both.")
    if config.tree:
        from aam_core.unifrac import BatchUniFrac

        return BatchUniFrac(
            dataset.counts,
            [str(f) for f in dataset.feature_ids],
            [str(s) for s in dataset.sequences],
            config.tree,
            config.unifrac_metric,
            prune_missing=config.prune_missing,
        )
    from aam_core.unifrac import read_distance_matrix

    matrix = read_distance_matrix(config.unifrac_matrix, [str(s) for s in dataset.sample_ids])
    return lambda rows: matrix[np.ix_(rows, rows)]
