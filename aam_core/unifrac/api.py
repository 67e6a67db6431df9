"""``aam unifrac`` as Python: the whole matrix to a file, or in memory for small tables."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs
import numpy as np

from aam_core.unifrac.engine import UniFracEngine, check_metric, resolve_device
from aam_core.unifrac.inputs import read_counts, read_sequences
from aam_core.unifrac.matrix_io import fill, iter_progress, output_format, write_matrix
from aam_core.unifrac.tree import read_tree

logger = logging.getLogger(__name__)


@attrs.frozen(eq=False)
class Distances:
    """A distance matrix in memory: ``matrix[i, j]`` between ``sample_ids[i]`` and ``[j]``."""

    sample_ids: list[str]
    matrix: np.ndarray


def _engine(
    table: str | os.PathLike,
    tree: str | os.PathLike,
    metric: str,
    sequences: str | os.PathLike | None,
    prune_missing: bool,
    device: str,
) -> tuple[UniFracEngine, list[str]]:
    counts = read_counts(table)
    parsed = read_tree(tree)
    engine = UniFracEngine(
        counts.matrix,
        counts.feature_ids,
        read_sequences(counts, sequences),
        parsed,
        metric,
        prune_missing=prune_missing,
        device=resolve_device(device),
        table_label=str(table),
    )
    if len(engine.empty_samples):
        example = counts.sample_ids[engine.empty_samples[0]]
        logger.warning(
            "%d samples have no reads on the tree (e.g. '%s'): their distance is 0 to each other "
            "and 1 to samples with reads.",
            len(engine.empty_samples),
            example,
        )
    return engine, counts.sample_ids


def compute_unifrac(
    table: str | os.PathLike,
    tree: str | os.PathLike,
    output: str | os.PathLike,
    metric: str = "unweighted",
    *,
    sequences: str | os.PathLike | None = None,
    prune_missing: bool = False,
    device: str = "auto",
) -> Path:
    """Write exact UniFrac distances between all samples of a BIOM table; returns ``output``.

    ``metric``: ``unweighted`` or ``weighted-normalized``. ``output``'s extension picks the
    format (``.tsv``, ``.h5``, ``.npy``; see :mod:`aam_core.unifrac.matrix_io`). Tips of
    ``tree`` are matched to the feature IDs or, with ``sequences`` (a FASTA of the features),
    to their sequences; ``prune_missing`` drops features the tree lacks instead of failing.
    ``device``: ``auto`` (a CUDA GPU when there is one), ``cpu`` or ``cuda[:N]``.
    """
    check_metric(metric)
    output_format(output)  # an unknown extension or a missing folder fails before any work
    engine, sample_ids = _engine(table, tree, metric, sequences, prune_missing, device)
    stripes = iter_progress(engine.stripes(), engine.n_samples)
    path = write_matrix(output, sample_ids, stripes)
    logger.info("Wrote %s UniFrac of %d samples to %s", metric, engine.n_samples, path)
    return path


def unifrac_matrix(
    table: str | os.PathLike,
    tree: str | os.PathLike,
    metric: str = "unweighted",
    *,
    sequences: str | os.PathLike | None = None,
    prune_missing: bool = False,
    device: str = "auto",
) -> Distances:
    """The same distances as :func:`compute_unifrac`, returned in memory (``N×N`` float64: for tables
    small enough to hold it)."""
    check_metric(metric)
    engine, sample_ids = _engine(table, tree, metric, sequences, prune_missing, device)
    matrix = np.zeros((engine.n_samples, engine.n_samples))
    fill(matrix, engine.stripes())
    return Distances(sample_ids, matrix)
