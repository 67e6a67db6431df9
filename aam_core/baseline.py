"""Run a baseline model on the same samples, split and units as an AAM run.

``run_baseline("random-forest", ...)`` and ``aam baseline random-forest ...`` run the same code:
load the table and metadata exactly as training does, build the samples × ASVs matrix (relative
abundance unless ``features="counts"``), fit on the training IDs, predict the validation IDs and
write ``sample_id, actual, predicted`` — the format of AAM's ``val_predictions.tsv`` — plus a
predicted-vs-actual PNG for regression.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
from scipy import sparse

from aam_core.config import DataConfig
from aam_core.data.dataset import load_dataset
from aam_core.data.samples import Samples, resolve_split
from aam_core.errors import ConfigError, DataError
from aam_core.files import write_tsv_atomic
from aam_core.plugins import get_plugin
from aam_core.training.metrics import compute_metrics

log = logging.getLogger("aam")

FEATURES = ("relative", "counts")

#: A sample list: IDs in memory, or a file with one ID per line.


@attrs.frozen
class BaselineResult:
    """What a baseline run produced."""

    #: ``mae``, ``rmse``, ``r2``, ``n`` (or ``accuracy``, ``f1``, ``n``) on the validation samples.
    metrics: dict[str, float]
    #: ``sample_id``, ``actual``, ``predicted`` for every validation sample, in original units.
    predictions: pd.DataFrame = attrs.field(eq=False)
    #: Where the predictions TSV was written.
    output: Path
    #: The predicted-vs-actual PNG (None for classification).
    plot: Path | None
    #: Training samples used, and the number of features the model saw.
    n_train: int
    n_features: int

    @property
    def n_val(self) -> int:
        return len(self.predictions)


def feature_matrix(counts: sparse.csr_matrix, features: str) -> sparse.csr_matrix:
    """Raw counts, or each row divided by its total (relative abundance)."""
    counts = sparse.csr_matrix(counts, dtype=np.float32)  # the dtype scikit-learn's trees use
    if features == "counts":
        return counts
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return sparse.csr_matrix(sparse.diags((1.0 / totals).astype(np.float32)) @ counts)


def run_baseline(
    name: str,
    *,
    table: str | os.PathLike,
    metadata: str | os.PathLike,
    metadata_column: str,
    train_samples: Samples,
    val_samples: Samples,
    output: str | os.PathLike,
    features: str = "relative",
    classifier: bool = False,
    sequences: str | os.PathLike | None = None,
    options: Any = None,
) -> BaselineResult:
    """Fit baseline ``name`` on ``train_samples``, predict ``val_samples``, write ``output``.

    ``options`` is the plugin's options object or a dict of its fields (``{"n_estimators": 100}``).
    Listed samples the loaded data lacks are skipped with a :class:`MissingSamplesWarning`.
    """
    if features not in FEATURES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURES)}, got '{features}'.")
    output = Path(output)
    if output.suffix.lower() == ".png":
        raise ConfigError(f"--output {output} must be a TSV path; the plot is written beside it.")
    spec = get_plugin("baseline", name)
    if options is None or isinstance(options, dict):
        options = spec.make_options(options)

    config = DataConfig(
        table=str(table),
        metadata=str(metadata),
        metadata_column=metadata_column,
        sequences=None if sequences is None else str(sequences),
    )
    data = load_dataset(config, classifier=classifier)
    train_ids, val_ids = resolve_split(train_samples, val_samples, data)

    train_rows, val_rows = data.rows_of(train_ids), data.rows_of(val_ids)
    x = feature_matrix(data.counts, features)
    used = np.flatnonzero(np.asarray((data.counts[train_rows] != 0).sum(axis=0)).ravel())
    # Dense, as the Baseline interface promises plugins (2,000 × 5,000 float32 is 40 MB).
    x_train = x[train_rows][:, used].toarray()
    x_val = x[val_rows][:, used].toarray()
    log.info(
        "%s: %d training and %d validation samples, %d features (%s).",
        spec.name,
        len(train_ids),
        len(val_ids),
        len(used),
        features,
    )

    task = "classification" if classifier else "regression"
    model = spec.factory(task=task, options=options)
    model.fit(x_train, data.target[train_rows])
    predicted = np.asarray(model.predict(x_val))
    actual = data.target[val_rows]
    if predicted.shape != (len(val_ids),):
        raise DataError(
            f"Baseline '{spec.name}' returned {predicted.shape} predictions for {len(val_ids)} "
            "validation samples."
        )
    frame = pd.DataFrame({"sample_id": val_ids, "actual": actual, "predicted": predicted})
    metrics = compute_metrics(actual, predicted, classifier)

    plot = None
    if not classifier:
        from aam_core.training.plots import save_predicted_vs_actual  # matplotlib: only when needed

        plot = save_predicted_vs_actual(
            actual, predicted, output.with_suffix(".png"), f"{metadata_column} — {spec.name}, validation"
        )
    write_tsv_atomic(frame, output)
    return BaselineResult(
        metrics=metrics,
        predictions=frame,
        output=output,
        plot=plot,
        n_train=len(train_ids),
        n_features=len(used),
    )
