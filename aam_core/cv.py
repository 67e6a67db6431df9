"""K-fold cross-validation of AAM against a baseline on identical folds.

For every fold, AAM (:func:`aam_core.api.train`) and the baseline (:func:`run_baseline`) train on
the same samples and predict the same held-out samples. The output directory holds::

    folds.tsv                  sample_id, fold (1-based)
    fold-<k>/aam/              the AAM run of fold k (checkpoints, val_predictions.tsv, ...)
    fold-<k>/<baseline>.tsv    the baseline's predictions for fold k (and its PNG)
    pooled_aam.tsv             every sample once, predicted by the fold that held it out
    pooled_<baseline>.tsv
    cv_metrics.json            metrics per fold and model, their mean and sd, and pooled metrics

Metrics are computed here from each fold's predictions in original units, the same way for both
models. The sd is the sample standard deviation over folds (ddof=1).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from aam_core.baseline import run_baseline
from aam_core.data.dataset import load_dataset
from aam_core.data.split import kfold_splits
from aam_core.errors import ConfigError, DataError
from aam_core.files import write_text_atomic, write_tsv_atomic
from aam_core.options import build_config
from aam_core.outdir import check_output_dir
from aam_core.plugins import get_plugin
from aam_core.training.metrics import compute_metrics

log = logging.getLogger("aam")

AAM = "aam"
#: Arguments ``cross_validate`` sets for each fold; they cannot come through ``**train_options``.
_PER_FOLD = ("train_samples", "val_samples")


@attrs.frozen
class CVResult:
    """What a cross-validation produced."""

    output_dir: Path
    #: ``sample_id``, ``fold`` (1-based).
    folds: pd.DataFrame = attrs.field(eq=False)
    #: The content of ``cv_metrics.json``.
    metrics: dict[str, Any]
    #: One row per model and metric: ``model``, ``metric``, ``mean``, ``sd``, ``pooled``.
    summary: pd.DataFrame = attrs.field(eq=False)
    #: Model name → pooled predictions (``sample_id``, ``actual``, ``predicted``, ``fold``).
    predictions: dict[str, pd.DataFrame] = attrs.field(eq=False)


def train(**kwargs: Any) -> Any:
    """AAM's training API, imported on first use (it pulls in torch)."""
    from aam_core.api import train as api_train

    return api_train(**kwargs)


def _finite_or_none(value: float) -> float | int | None:
    """JSON-safe: counts stay integers, NaN and infinities become null."""
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _model_metrics(per_fold: list[dict[str, float]], pooled: dict[str, float]) -> dict[str, Any]:
    keys = [k for k in per_fold[0] if k != "n"]
    values = {k: np.array([m[k] for m in per_fold], dtype=float) for k in keys}
    return {
        "folds": [
            {"fold": i, **{k: _finite_or_none(v) for k, v in m.items()}}
            for i, m in enumerate(per_fold, start=1)
        ],
        "mean": {k: _finite_or_none(np.mean(v)) for k, v in values.items()},
        "sd": {
            k: _finite_or_none(np.std(v, ddof=1)) if len(v) > 1 else None for k, v in values.items()
        },
        "pooled": {k: _finite_or_none(v) for k, v in pooled.items()},
    }


def _summary(models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "model": model,
            "metric": key,
            "mean": entry["mean"][key],
            "sd": entry["sd"][key],
            "pooled": entry["pooled"].get(key),
        }
        for model, entry in models.items()
        for key in entry["mean"]
    ]
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "sd", "pooled"]).astype(
        {"mean": float, "sd": float, "pooled": float}
    )


def _fold_predictions(
    frame: pd.DataFrame, val_ids: list[str], model: str, fold: int
) -> pd.DataFrame:
    missing_columns = {"sample_id", "actual", "predicted"} - set(frame.columns)
    if missing_columns:
        raise DataError(
            f"Fold {fold}: {model} returned predictions without {', '.join(sorted(missing_columns))}."
        )
    frame = frame[["sample_id", "actual", "predicted"]].copy()
    frame["sample_id"] = frame["sample_id"].astype(str)
    got = set(frame["sample_id"])
    missing = [s for s in val_ids if s not in got]
    if missing:
        log.warning(
            "Fold %d: %s has no prediction for %d of %d held-out samples (e.g. '%s').",
            fold,
            model,
            len(missing),
            len(val_ids),
            missing[0],
        )
    frame["fold"] = fold
    return frame


def cross_validate(
    *,
    table: str | os.PathLike,
    metadata: str | os.PathLike,
    metadata_column: str,
    folds: int = 5,
    group_by: str | None = None,
    stratify_by: str | None = None,
    output_dir: str | os.PathLike,
    seed: int = 42,
    baseline: str | None = "random-forest",
    baseline_options: Any = None,
    force: bool = False,
    **train_options: Any,
) -> CVResult:
    """Train AAM and ``baseline`` on the same ``folds`` folds and compare them.

    ``group_by`` keeps every sample of a group (a subject, a site) on one side of each fold;
    ``stratify_by`` balances a categorical column across folds. ``train_options`` go to
    :func:`aam_core.api.train` unchanged (``epochs=``, ``fusion=``, ``config=``...).
    ``baseline=None`` runs AAM alone.
    """
    clash = [k for k in (*_PER_FOLD, "seed") if k in train_options]
    if clash:
        raise ConfigError(
            f"{', '.join(clash)} cannot be set for cross-validation: the folds set them."
        )
    output_dir = Path(output_dir)
    check_output_dir(output_dir, force)
    if baseline is not None:
        spec = get_plugin("baseline", baseline)
        baseline = spec.name
        if baseline_options is None or isinstance(baseline_options, dict):
            baseline_options = spec.make_options(baseline_options)
        if baseline == AAM:
            raise ConfigError(f"A baseline named '{AAM}' would overwrite AAM's pooled predictions.")

    # The training options resolved exactly as train() resolves them: same samples, and a bad
    # option fails here rather than after the first fold.
    options = {k: v for k, v in train_options.items() if k != "config"}
    run_config = build_config(
        train_options.get("config"),
        table=str(table),
        metadata=str(metadata),
        metadata_column=metadata_column,
        **options,
    )
    classifier = run_config.model.classifier
    sequences = run_config.data.sequences
    data_config = attrs.evolve(run_config.data, stratify_by=stratify_by)
    data = load_dataset(
        data_config, classifier=classifier, extra_columns=(group_by,) if group_by else ()
    )
    ids = [str(s) for s in data.sample_ids]
    groups = data.column(group_by) if group_by else None
    if groups is not None and (groups == "").any():
        warnings.warn(
            f"{int((groups == '').sum())} samples have no '{group_by}' value; they are kept "
            "together as one group.",
            stacklevel=2,
        )
    splits = kfold_splits(
        ids, folds, seed, groups=groups, strata=data.column(stratify_by) if stratify_by else None
    )
    fold_of = {sid: k for k, (_, val) in enumerate(splits, start=1) for sid in val}
    fold_table = pd.DataFrame({"sample_id": ids, "fold": [fold_of[s] for s in ids]})
    write_tsv_atomic(fold_table, output_dir / "folds.tsv")
    log.info("Cross-validation: %d samples in %d folds (seed %d).", len(ids), folds, seed)

    models = [AAM] if baseline is None else [AAM, baseline]
    collected: dict[str, list[pd.DataFrame]] = {m: [] for m in models}
    per_fold: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    for k, (train_ids, val_ids) in enumerate(splits, start=1):
        fold_dir = output_dir / f"fold-{k}"
        log.info(
            "Fold %d/%d: %d training, %d validation samples.",
            k,
            folds,
            len(train_ids),
            len(val_ids),
        )
        result = train(
            table=table,
            metadata=metadata,
            metadata_column=metadata_column,
            output_dir=fold_dir / AAM,
            train_samples=train_ids,
            val_samples=val_ids,
            force=force,
            seed=seed,
            **train_options,
        )
        outputs = {AAM: result.predictions}
        if baseline is not None:
            outputs[baseline] = run_baseline(
                baseline,
                table=table,
                metadata=metadata,
                metadata_column=metadata_column,
                train_samples=train_ids,
                val_samples=val_ids,
                output=fold_dir / f"{baseline}.tsv",
                classifier=classifier,
                sequences=sequences,
                options=baseline_options,
            ).predictions
        for model, frame in outputs.items():
            frame = _fold_predictions(frame, val_ids, model, k)
            collected[model].append(frame)
            per_fold[model].append(
                compute_metrics(
                    frame["actual"].to_numpy(), frame["predicted"].to_numpy(), classifier
                )
            )

    pooled: dict[str, pd.DataFrame] = {}
    metrics_by_model: dict[str, dict[str, Any]] = {}
    for model in models:
        frame = pd.concat(collected[model], ignore_index=True)
        pooled[model] = frame
        write_tsv_atomic(frame, output_dir / f"pooled_{model}.tsv")
        overall = compute_metrics(
            frame["actual"].to_numpy(), frame["predicted"].to_numpy(), classifier
        )
        metrics_by_model[model] = _model_metrics(per_fold[model], overall)
    metrics = {
        "folds": folds,
        "seed": seed,
        "group_by": group_by,
        "stratify_by": stratify_by,
        "task": "classification" if classifier else "regression",
        "models": metrics_by_model,
    }
    write_text_atomic(output_dir / "cv_metrics.json", json.dumps(metrics, indent=2) + "\n")
    return CVResult(
        output_dir=output_dir,
        folds=fold_table,
        metrics=metrics,
        summary=_summary(metrics_by_model),
        predictions=pooled,
    )
