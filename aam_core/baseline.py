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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
from scipy import sparse

from aam_core.config import DataConfig
from aam_core.data.dataset import Dataset, load_dataset, read_sample_list
from aam_core.errors import ConfigError, DataError
from aam_core.plugins import get_plugin
from aam_core.training.metrics import compute_metrics

log = logging.getLogger("aam")

FEATURES = ("relative", "counts")

#: A sample list: IDs in memory, or a file with one ID per line.
Samples = Sequence[str] | str | os.PathLike


class MissingSamplesWarning(UserWarning):
    """Listed samples that the loaded data does not contain; they are skipped."""


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


def resolve_samples(samples: Samples, what: str) -> list[str]:
    """IDs from a list, or from a file of one ID per line; duplicates removed, order kept."""
    if isinstance(samples, str | os.PathLike):
        ids = read_sample_list(samples)
    else:
        ids = [str(s).strip() for s in samples]
    ids = list(dict.fromkeys(s for s in ids if s))
    if not ids:
        raise DataError(f"The {what} sample list is empty.")
    return ids


def present(ids: list[str], dataset: Dataset, what: str) -> list[str]:
    """The IDs the loaded data holds; the others are skipped with one warning."""
    known = set(dataset.sample_ids)
    missing = [s for s in ids if s not in known]
    if missing:
        noun = "sample" if len(missing) == 1 else "samples"
        warnings.warn(
            f"{len(missing)} {what} {noun} of {len(ids)} are not in the loaded data (absent from "
            f"the table or metadata, or without a usable target) and were skipped, "
            f"e.g. '{missing[0]}'.",
            MissingSamplesWarning,
            stacklevel=3,
        )
    return [s for s in ids if s in known]


def feature_matrix(counts: sparse.csr_matrix, features: str) -> sparse.csr_matrix:
    """Raw counts, or each row divided by its total (relative abundance)."""
    counts = sparse.csr_matrix(counts, dtype=np.float32)  # the dtype scikit-learn's trees use
    if features == "counts":
        return counts
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return sparse.csr_matrix(sparse.diags((1.0 / totals).astype(np.float32)) @ counts)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_predictions(frame: pd.DataFrame, path: Path) -> Path:
    """A predictions TSV (``sample_id``, ``actual``, ``predicted``, ...), written atomically."""
    return atomic_write_text(path, frame.to_csv(sep="\t", index=False))


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
    train_ids = resolve_samples(train_samples, "training")
    val_ids = resolve_samples(val_samples, "validation")

    config = DataConfig(
        table=str(table),
        metadata=str(metadata),
        metadata_column=metadata_column,
        sequences=None if sequences is None else str(sequences),
    )
    data = load_dataset(config, classifier=classifier)
    train_ids = present(train_ids, data, "training")
    val_ids = present(val_ids, data, "validation")
    if not train_ids:
        raise DataError(
            f"No usable training samples: none of the listed IDs is in {table} with a "
            f"'{metadata_column}' value in {metadata}."
        )
    if not val_ids:
        raise DataError(
            f"No usable validation samples: none of the listed IDs is in {table} with a "
            f"'{metadata_column}' value in {metadata}."
        )
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        raise DataError(
            f"{len(overlap)} samples are in both the training and validation lists, "
            f"e.g. '{sorted(overlap)[0]}'."
        )

    train_rows, val_rows = data.rows_of(train_ids), data.rows_of(val_ids)
    x = feature_matrix(data.counts, features)
    used = np.flatnonzero(np.asarray((data.counts[train_rows] != 0).sum(axis=0)).ravel())
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
    write_predictions(frame, output)
    return BaselineResult(
        metrics=metrics,
        predictions=frame,
        output=output,
        plot=plot,
        n_train=len(train_ids),
        n_features=len(used),
    )
