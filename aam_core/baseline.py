"""Run a baseline model on the same samples, split and units as an AAM run.

``run_baseline("random-forest", ...)`` and ``aam baseline random-forest ...`` run the same code:
load the table and metadata exactly as training does (``rarefy_depth`` included), build the
samples × ASVs matrix, fit, predict and write ``sample_id, actual, predicted`` — the layout of
AAM's ``val_predictions.tsv``, with one probability column per class for a classifier that gives
them — plus figures beside the TSV: predicted vs actual (regression), or a confusion matrix and,
for two classes, an ROC curve (classification).

Two ways to split:

* training + validation lists: fit on the training samples, score the validation samples;
* training (+ validation) + test lists: fit on the training *and* validation samples, score the
  test samples only. A baseline tunes only on the samples it fits (the forest chooses
  ``--max-features`` out of bag), so the samples AAM holds out for early stopping are plain
  training data for it; fitting on them is what makes the test scores comparable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
from scipy import sparse

from aam_core.config import DataConfig, split_columns
from aam_core.data.dataset import Dataset, load_dataset
from aam_core.data.paths import output_file
from aam_core.data.samples import (
    Samples,
    check_disjoint,
    none_usable,
    present,
    resolve_samples,
    resolve_split,
)
from aam_core.errors import ConfigError, DataError
from aam_core.files import write_tsv_atomic
from aam_core.interfaces import Baseline
from aam_core.plugins import get_plugin
from aam_core.predictions import predictions_frame
from aam_core.training.metrics import classification_report, compute_metrics

FEATURES = ("relative", "counts")


@attrs.frozen
class BaselineResult:
    """What a baseline run produced."""

    #: ``mae``, ``rmse``, ``r2``, ``n`` (or ``accuracy``, ``f1``, ``n`` and, with probabilities of
    #: two classes, ``auc``) on the scored samples: the test samples if given, else validation.
    metrics: dict[str, float]
    #: ``sample_id``, ``actual``, ``predicted`` (+ class probabilities) per scored sample.
    predictions: pd.DataFrame = attrs.field(eq=False)
    #: Where the predictions TSV was written.
    output: Path
    #: The predicted-vs-actual PNG (regression) or the confusion-matrix PNG (classification).
    plot: Path | None
    #: Training samples used, and the number of features the model saw.
    n_train: int
    n_features: int
    #: Validation samples: scored, or — when test samples are given — fitted on.
    n_val: int
    #: Test samples scored (0 without a test list).
    n_test: int = 0
    #: Of ``n_features``, the categorical indicators (``column=value``, after the ASVs).
    n_indicators: int = 0
    #: The ROC-curve PNG (classification with probabilities of two classes), else None.
    roc_plot: Path | None = None
    #: Per-class ``precision``, ``recall``, ``f1``, ``support`` (classification), else None.
    report: dict[str, dict[str, float]] | None = None
    #: The fitted model (``model.feature_importances()`` where it has them).
    model: Baseline | None = attrs.field(default=None, eq=False, repr=False)
    #: The ASV sequence of each column the model saw, in column order, then ``column=value``
    #: for each categorical indicator.
    features: list[str] = attrs.field(factory=list, eq=False, repr=False)

    @property
    def scored_on(self) -> str:
        """``test`` or ``validation``: which samples the metrics and predictions are of."""
        return "test" if self.n_test else "validation"


def feature_matrix(counts: sparse.csr_matrix, features: str) -> sparse.csr_matrix:
    """Raw counts, or each row divided by its total (relative abundance).

    The total is the sample's full read count (after rarefaction, if any): the share of an ASV
    does not change when ASVs absent from the training samples are left out of the matrix.
    """
    counts = sparse.csr_matrix(counts, dtype=np.float32)  # the dtype scikit-learn's trees use
    if features == "counts":
        return counts
    totals = np.asarray(counts.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return sparse.csr_matrix(sparse.diags((1.0 / totals).astype(np.float32)) @ counts)


def category_indicators(data: Dataset, columns: list[str], fit_rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One 0/1 column per value of each categorical column that the fitted samples hold, named
    ``column=value``: the one-hot form of what AAM's categorical embedding reads. A value those
    samples lack (a new study), or a missing one, sets none of its column's indicators — the
    forest's counterpart of AAM's reserved unknown category."""
    blocks, names = [np.zeros((len(data.sample_ids), 0), dtype=np.float32)], []
    for column in columns:
        values = data.column(column)
        seen = sorted(set(values[fit_rows]) - {""})
        blocks.append((values[:, None] == np.array(seen, dtype=str)[None, :]).astype(np.float32))
        names += [f"{column}={value}" for value in seen]
    return np.hstack(blocks), names


def _split_samples(
    data: Dataset, train: Samples, val: Samples | None, test: Samples | None
) -> tuple[list[str], list[str], list[str]]:
    """The usable, disjoint ``(training, validation, test)`` IDs; test is empty without a list
    (then ``val`` is required)."""
    if test is None:
        return (*resolve_split(train, val, data), [])
    lists = {"training": train, "validation": val, "test": test}
    listed = {what: [] if given is None else resolve_samples(given, what) for what, given in lists.items()}
    ids = {what: present(listed[what], data, what) if listed[what] else [] for what in lists}
    for what in ("training", "test"):
        if not ids[what]:
            raise none_usable(listed[what], lists[what], what)
    check_disjoint(ids)
    return ids["training"], ids["validation"], ids["test"]


def run_baseline(
    name: str,
    *,
    table: str | os.PathLike,
    metadata: str | os.PathLike,
    metadata_column: str,
    train_samples: Samples,
    val_samples: Samples | None = None,
    output: str | os.PathLike,
    test_samples: Samples | None = None,
    features: str = "relative",
    classifier: bool = False,
    sequences: str | os.PathLike | None = None,
    rarefy_depth: int | None = None,
    categorical_columns: str | list[str] | None = None,
    options: Any = None,
) -> BaselineResult:
    """Fit baseline ``name`` and score it; write ``output`` and its figures beside it.

    Without ``test_samples``: fit on ``train_samples``, score ``val_samples``. With them: fit on
    ``train_samples`` plus ``val_samples`` (optional) and score ``test_samples`` only — the
    baseline tunes only on the samples it fits (no early stopping), so AAM's validation samples
    are training data for it. ``rarefy_depth`` rarefies the table exactly as
    ``aam train --rarefy-depth`` does. Features are each sample's ASV counts
    (``features="counts"``) or their share of the sample's full read count (``"relative"``), for
    the ASVs present in the samples fitted on, and one indicator per value of each of
    ``categorical_columns`` (:func:`category_indicators`), so the baseline can see what an AAM
    run with ``--categorical-columns`` sees.

    ``options`` is the plugin's options object or a dict of its fields (``{"n_estimators": 100}``).
    Listed samples the loaded data lacks are skipped with a :class:`MissingSamplesWarning`.
    Bad input raises before anything is written.
    """
    if features not in FEATURES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURES)}, got '{features}'.")
    output = Path(output)
    if output.suffix.lower() == ".png":
        raise ConfigError(f"--output {output} must be a TSV path; the plots are written beside it.")
    if val_samples is None and test_samples is None:
        raise ConfigError("Give --val-samples (the samples to score), or --test-samples.")
    inputs = {"--table": table, "--metadata": metadata, "--sequences": sequences}
    for flag, listed in (("--train-samples", train_samples), ("--val-samples", val_samples), ("--test-samples", test_samples)):
        if isinstance(listed, str | os.PathLike):
            inputs[flag] = listed
    output_file(output, "--output", inputs)
    spec = get_plugin("baseline", name)
    if options is None or isinstance(options, dict):
        options = spec.make_options(options)

    config = DataConfig(
        table=str(table),
        metadata=str(metadata),
        metadata_column=metadata_column,
        sequences=None if sequences is None else str(sequences),
        rarefy_depth=rarefy_depth,
        categorical_columns=split_columns(categorical_columns),
    )
    data = load_dataset(config, classifier=classifier)
    train_ids, val_ids, test_ids = _split_samples(data, train_samples, val_samples, test_samples)
    fit_ids, scored_ids = (train_ids + val_ids, test_ids) if test_ids else (train_ids, val_ids)

    fit_rows, scored_rows = data.rows_of(fit_ids), data.rows_of(scored_ids)
    x = feature_matrix(data.counts, features)
    used = np.flatnonzero(np.asarray((data.counts[fit_rows] != 0).sum(axis=0)).ravel())
    indicators, indicator_names = category_indicators(data, config.categorical_columns, fit_rows)
    # Dense, as the Baseline interface promises plugins (2,000 × 5,000 float32 is 40 MB).
    x_fit = np.hstack([x[fit_rows][:, used].toarray(), indicators[fit_rows]])
    x_scored = np.hstack([x[scored_rows][:, used].toarray(), indicators[scored_rows]])

    task = "classification" if classifier else "regression"
    model = spec.factory(task=task, options=options)
    model.fit(x_fit, data.target[fit_rows])
    predicted = np.asarray(model.predict(x_scored))
    actual = data.target[scored_rows]
    if predicted.shape != (len(scored_ids),):
        raise DataError(
            f"Baseline '{spec.name}' returned {predicted.shape} predictions for "
            f"{len(scored_ids)} samples."
        )
    probabilities = model.predict_proba(x_scored) if classifier else None
    classes = None if probabilities is None else model.classes_
    if probabilities is not None and (
        classes is None or np.shape(probabilities) != (len(scored_ids), len(classes))
    ):
        raise DataError(
            f"Baseline '{spec.name}' returned class probabilities of shape "
            f"{np.shape(probabilities)} for {len(scored_ids)} samples and classes {classes}."
        )
    frame = predictions_frame(scored_ids, actual, predicted, probabilities, classes)
    metrics = compute_metrics(actual, predicted, classifier, probabilities, classes)

    scored_on = "test" if test_ids else "validation"
    title = f"{spec.name}, {scored_on} samples"
    if test_ids:
        title += " (fitted on training + validation)"
    roc_plot = report = None
    if classifier:
        from aam_core.training.plots import save_classification_plots  # matplotlib: when needed

        report = classification_report(actual, predicted)
        plot, roc_plot = save_classification_plots(
            frame,
            output.with_suffix(".confusion.png"),
            output.with_suffix(".roc.png"),
            title,
            variable=metadata_column,
        )
    else:
        from aam_core.training.plots import save_predicted_vs_actual

        plot = save_predicted_vs_actual(
            actual, predicted, output.with_suffix(".png"), title, variable=metadata_column
        )
    write_tsv_atomic(frame, output)
    return BaselineResult(
        metrics=metrics,
        predictions=frame,
        output=output,
        plot=plot,
        n_train=len(train_ids),
        n_features=len(used) + len(indicator_names),
        n_val=len(val_ids),
        n_test=len(test_ids),
        n_indicators=len(indicator_names),
        roc_plot=roc_plot,
        report=report,
        model=model,
        features=[str(s) for s in data.sequences[used]] + indicator_names,
    )
