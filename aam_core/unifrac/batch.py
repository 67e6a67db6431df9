"""On-the-fly UniFrac for training batches: the exact ``[B, B]`` distances of any samples.

Pretraining asks for the distances of every batch. :class:`BatchUniFrac` computes each sample's
representation on the tree once, at construction; a call then costs about ``B²`` times the
number of tree nodes many samples share (milliseconds for B = 128 on a 2,500-sample table),
and returns exactly what the full matrix holds for those pairs (the same code computes both).
"""

from __future__ import annotations

import os

import numpy as np
from scipy import sparse

from aam_core.unifrac.engine import UniFracEngine, resolve_device
from aam_core.unifrac.tree import Tree, read_tree


class BatchUniFrac:
    """``BatchUniFrac(counts, feature_ids, sequences, tree, metric)(rows) -> float64 [B, B]``.

    ``counts`` is ``[samples, features]`` (CSR or dense); ``feature_ids`` and ``sequences`` are
    in its column order (``sequences`` may be ``None`` when the tree's tips are the IDs);
    ``tree`` is a Newick path or a parsed :class:`~aam_core.unifrac.tree.Tree`. ``rows`` index
    the samples (any order, any length ≥ 1).
    """

    def __init__(
        self,
        counts: sparse.spmatrix | np.ndarray,
        feature_ids: list[str],
        sequences: list[str] | None,
        tree: Tree | str | os.PathLike,
        metric: str = "unweighted",
        *,
        prune_missing: bool = False,
        device: str = "cpu",
    ) -> None:
        parsed = tree if isinstance(tree, Tree) else read_tree(tree)
        self.engine = UniFracEngine(
            counts,
            list(feature_ids),
            None if sequences is None else list(sequences),
            parsed,
            metric,
            prune_missing=prune_missing,
            device=resolve_device(device),
        )

    @property
    def n_samples(self) -> int:
        return self.engine.n_samples

    @property
    def metric(self) -> str:
        return self.engine.metric

    def __call__(self, rows) -> np.ndarray:
        return self.engine.pairs(np.asarray(rows))
