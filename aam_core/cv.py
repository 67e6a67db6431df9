"""K-fold cross-validation of AAM against a baseline on identical folds, scored on unseen samples.

Each outer fold is held out as a test set that no selection sees. Its training samples are split
once more, grouped and stratified like the outer folds: AAM (:func:`aam_core.api.train`) trains
on the inner-training samples, picks its best epoch (early stopping, ``best.pt``) on the
inner-validation samples and predicts the outer fold. The baseline (:func:`run_baseline`) fits on
inner-training *and* inner-validation samples — whatever it tunes, it tunes on the samples it
fits (the forest: out of bag), so the samples AAM learns from through selection are plain
training data for it — and predicts the same outer fold. Both are scored on the outer fold only.
The output directory holds::

    folds.tsv                  sample_id, fold (the outer fold holding it out, 1-based), then
                               role_<k> per fold: train, val (AAM's inner validation) or test
    fold-<k>/aam/              the AAM run of fold k (checkpoints, test_predictions.tsv, ...)
    fold-<k>/<baseline>.tsv    the baseline's predictions for fold k's test samples (and figures)
    pooled_aam.tsv             every sample once, predicted by the fold that held it out
    pooled_<baseline>.tsv      (class probability columns kept for classification)
    cv_metrics.json            per fold and model: metrics, mean, sd, pooled; the paired
                               difference AAM − baseline per fold, its mean and sd

Metrics are computed here from each fold's predictions in original units, the same way for both
models (AUC from the probability columns of two classes). The sd is the sample standard
deviation over folds (ddof=1). The inner split is the first of ``round(1 / val_fraction)`` folds
of the outer training samples, ``val_fraction`` being the run config's (default 0.2).
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
from aam_core.predictions import COLUMNS, probability_columns, read_probabilities
from aam_core.training.metrics import compute_metrics

log = logging.getLogger("aam")

AAM = "aam"
#: The summary's name for the paired difference AAM − baseline.
DIFFERENCE = "difference"
#: Arguments ``cross_validate`` sets for each fold; they cannot come through ``**train_options``.
_PER_FOLD = ("train_samples", "val_samples", "test_samples")


@attrs.frozen
class Fold:
    """One fold's samples: AAM trains on ``train``, selects on ``val``; both models score ``test``."""

    number: int
    train: list[str]
    #: AAM's inner validation (early stopping, ``best.pt``); the baseline fits on it.
    val: list[str]
    #: The outer fold: held out of training and selection, the only samples scored.
    test: list[str]


@attrs.frozen
class CVResult:
    """What a cross-validation produced."""

    output_dir: Path
    #: The content of ``folds.tsv``: ``sample_id``, ``fold`` (1-based), ``role_<k>`` per fold.
    folds: pd.DataFrame = attrs.field(eq=False)
    #: The content of ``cv_metrics.json``.
    metrics: dict[str, Any]
    #: One row per model and metric: ``model`` (``difference`` for AAM − baseline), ``metric``,
    #: ``mean``, ``sd``, ``pooled``.
    summary: pd.DataFrame = attrs.field(eq=False)
    #: Model name → pooled predictions (``sample_id``, ``actual``, ``predicted``, class
    #: probabilities for classification, ``fold``).
    predictions: dict[str, pd.DataFrame] = attrs.field(eq=False)
    #: The samples of every fold, in fold order.
    splits: list[Fold] = attrs.field(factory=list, eq=False)


def train(**kwargs: Any) -> Any:
    """AAM's training API, imported on first use (it pulls in torch)."""
    from aam_core.api import train as api_train

    return api_train(**kwargs)


def plan_folds(
    sample_ids: list[str],
    folds: int,
    seed: int,
    val_fraction: float,
    groups: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> list[Fold]:
    """The outer folds, and in each one's training samples an inner validation split made the
    same way (a group stays on one side, strata keep their shares): the first of
    ``round(1 / val_fraction)`` folds. Raises :class:`DataError` before anything is written."""
    inner = round(1 / val_fraction)
    if inner < 2:
        raise DataError(
            f"--val-fraction {val_fraction} is too large for cross-validation: the inner "
            "validation split is one of round(1 / val-fraction) folds of each training fold; "
            "use 0.5 or less."
        )
    position = {s: i for i, s in enumerate(sample_ids)}
    plan = []
    outer = kfold_splits(sample_ids, folds, seed, groups=groups, strata=strata)
    for k, (train_ids, test_ids) in enumerate(outer, start=1):
        rows = [position[s] for s in train_ids]
        try:
            inner_train, inner_val = kfold_splits(
                train_ids,
                inner,
                seed,
                groups=None if groups is None else groups[rows],
                strata=None if strata is None else strata[rows],
            )[0]
        except DataError as exc:
            raise DataError(
                f"Fold {k}: its {len(train_ids)} training samples cannot give an inner validation "
                f"split of 1 in {inner} (--val-fraction {val_fraction}): {exc} Use a larger "
                f"--val-fraction, or more --folds than {folds} for larger training folds."
            ) from None
        plan.append(Fold(number=k, train=inner_train, val=inner_val, test=test_ids))
    return plan


def _folds_table(sample_ids: list[str], plan: list[Fold]) -> pd.DataFrame:
    table = pd.DataFrame({"sample_id": sample_ids})
    table["fold"] = table["sample_id"].map({s: f.number for f in plan for s in f.test})
    for fold in plan:
        roles = {s: role for role in ("train", "val", "test") for s in getattr(fold, role)}
        table[f"role_{fold.number}"] = table["sample_id"].map(roles)
    return table


def _fold_predictions(
    frame: pd.DataFrame | None, fold: Fold, model: str, classifier: bool
) -> pd.DataFrame:
    """``frame`` checked to score only the fold's test samples: ``sample_id``, ``actual``,
    ``predicted``, class probabilities (classification), ``fold``."""
    if frame is None:
        raise DataError(f"Fold {fold.number}: {model} returned no predictions of the test samples.")
    missing_columns = set(COLUMNS) - set(frame.columns)
    if missing_columns:
        raise DataError(
            f"Fold {fold.number}: {model} returned predictions without "
            f"{', '.join(sorted(missing_columns))}."
        )
    columns = probability_columns(frame) if classifier else []
    frame = frame[[*COLUMNS, *columns]].copy()
    frame["sample_id"] = frame["sample_id"].astype(str)
    scored = set(frame["sample_id"])
    outside = sorted(scored - set(fold.test))
    if outside:
        raise DataError(
            f"Fold {fold.number}: {model} scored {len(outside)} samples outside the fold's test "
            f"samples (e.g. '{outside[0]}')."
        )
    missing = [s for s in fold.test if s not in scored]
    if missing:
        log.warning(
            "Fold %d: %s has no prediction for %d of %d test samples (e.g. '%s').",
            fold.number,
            model,
            len(missing),
            len(fold.test),
            missing[0],
        )
    frame["fold"] = fold.number
    return frame


def _metrics_of(frame: pd.DataFrame, classifier: bool) -> dict[str, float]:
    probabilities = read_probabilities(frame) if classifier else None
    return compute_metrics(
        frame["actual"].to_numpy(),
        frame["predicted"].to_numpy(),
        classifier,
        *(probabilities if probabilities is not None else (None, None)),
    )


def _pool(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The folds' predictions in one frame. A class a fold never trained on has probability 0
    there; the class columns are sorted."""
    frame = pd.concat(frames, ignore_index=True)
    classes = sorted({c for f in frames for c in f.columns} - {*COLUMNS, "fold"})
    frame[classes] = frame[classes].fillna(0.0)
    return frame[[*COLUMNS, *classes, "fold"]]


def _finite_or_none(value: float) -> float | int | None:
    """JSON-safe: counts stay integers, NaN and infinities become null."""
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _aggregate(per_fold: list[dict[str, float]], pooled: dict[str, float]) -> dict[str, Any]:
    """Per-fold values, their mean and sd (``n`` excluded), and the pooled values. A metric a
    fold lacks (AUC without two classes' probabilities) is NaN there."""
    keys = list(dict.fromkeys(k for m in per_fold for k in m if k != "n"))
    values = {k: np.array([m.get(k, math.nan) for m in per_fold], dtype=float) for k in keys}
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


def _minus(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    return {k: first[k] - second.get(k, math.nan) for k in first if k != "n"}


def _difference(
    first: list[dict[str, float]],
    second: list[dict[str, float]],
    first_pooled: dict[str, float],
    second_pooled: dict[str, float],
) -> dict[str, Any]:
    """``first − second`` paired by fold for every metric but ``n``, aggregated like a model;
    ``pooled`` is the difference of the pooled metrics."""
    paired = [_minus(a, b) for a, b in zip(first, second, strict=True)]
    return _aggregate(paired, _minus(first_pooled, second_pooled))


def _summary(metrics: dict[str, Any]) -> pd.DataFrame:
    entries = dict(metrics["models"])
    if metrics["difference"] is not None:
        entries[DIFFERENCE] = metrics["difference"]
    rows = [
        {
            "model": model,
            "metric": key,
            "mean": entry["mean"][key],
            "sd": entry["sd"][key],
            "pooled": entry["pooled"].get(key),
        }
        for model, entry in entries.items()
        for key in entry["mean"]
    ]
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "sd", "pooled"]).astype(
        {"mean": float, "sd": float, "pooled": float}
    )


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
    """Train AAM and ``baseline`` on the same ``folds`` folds; score both on each held-out fold.

    ``group_by`` keeps every sample of a group (a subject, a site) on one side of each fold and
    of each inner split; ``stratify_by`` balances a categorical column across both. AAM selects
    its best epoch on an inner validation split of each training fold (``val_fraction=``,
    default 0.2); the baseline fits on those samples too, as it tunes only on what it fits.
    Neither sees the held-out fold before scoring it. ``train_options`` go to
    :func:`aam_core.api.train` unchanged (``epochs=``, ``fusion=``, ``config=``...);
    ``rarefy_depth`` applies to the baseline as well, and so do AAM's categorical columns (one
    indicator per value: the baseline sees what AAM sees). ``baseline=None`` runs AAM alone.
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
        if baseline in (AAM, DIFFERENCE):
            raise ConfigError(
                f"A baseline named '{baseline}' would be confused with AAM's results."
            )

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
    # The plugins a fold would reject, rejected before folds.tsv is written.
    get_plugin("fusion", run_config.model.fusion).make_options(run_config.model.fusion_options)
    get_plugin("transform", run_config.training.target_transform)
    get_plugin("parallel", run_config.training.parallel)
    if "resume_from" in train_options:
        raise ConfigError("--resume-from does not apply to cross-validation: each fold is a run of its own.")
    if run_config.data.test_fraction:
        raise ConfigError(
            "--test-fraction does not apply to cross-validation: each fold's held-out samples "
            "are its test set."
        )
    classifier = run_config.model.classifier
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
    val_fraction = run_config.data.val_fraction
    strata = data.column(stratify_by) if stratify_by else None
    plan = plan_folds(ids, folds, seed, val_fraction, groups=groups, strata=strata)
    fold_table = _folds_table(ids, plan)
    write_tsv_atomic(fold_table, output_dir / "folds.tsv")
    log.info(
        "Cross-validation: %d samples in %d folds, 1 in %d of each training fold for AAM's "
        "validation (seed %d).",
        len(ids),
        folds,
        round(1 / val_fraction),
        seed,
    )

    models = [AAM] if baseline is None else [AAM, baseline]
    collected: dict[str, list[pd.DataFrame]] = {m: [] for m in models}
    per_fold: dict[str, list[dict[str, float]]] = {m: [] for m in models}
    for fold in plan:
        fold_dir = output_dir / f"fold-{fold.number}"
        log.info(
            "Fold %d/%d: %d training, %d validation (AAM's selection), %d test samples.",
            fold.number,
            folds,
            len(fold.train),
            len(fold.val),
            len(fold.test),
        )
        result = train(
            table=table,
            metadata=metadata,
            metadata_column=metadata_column,
            output_dir=fold_dir / AAM,
            train_samples=fold.train,
            val_samples=fold.val,
            test_samples=fold.test,
            force=force,
            seed=seed,
            **train_options,
        )
        outputs = {AAM: result.test_predictions}
        if baseline is not None:
            outputs[baseline] = run_baseline(
                baseline,
                table=table,
                metadata=metadata,
                metadata_column=metadata_column,
                train_samples=fold.train,
                val_samples=fold.val,
                test_samples=fold.test,
                output=fold_dir / f"{baseline}.tsv",
                classifier=classifier,
                sequences=run_config.data.sequences,
                rarefy_depth=run_config.data.rarefy_depth,
                categorical_columns=run_config.data.categorical_columns,
                options=baseline_options,
            ).predictions
        for model, frame in outputs.items():
            frame = _fold_predictions(frame, fold, model, classifier)
            collected[model].append(frame)
            per_fold[model].append(_metrics_of(frame, classifier))

    pooled: dict[str, pd.DataFrame] = {}
    overall: dict[str, dict[str, float]] = {}
    for model in models:
        pooled[model] = _pool(collected[model])
        write_tsv_atomic(pooled[model], output_dir / f"pooled_{model}.tsv")
        overall[model] = _metrics_of(pooled[model], classifier)
    difference = None
    if baseline is not None:
        difference = {
            "model": AAM,
            "baseline": baseline,
            **_difference(per_fold[AAM], per_fold[baseline], overall[AAM], overall[baseline]),
        }
    metrics = {
        "folds": folds,
        "seed": seed,
        "group_by": group_by,
        "stratify_by": stratify_by,
        "val_fraction": val_fraction,
        "rarefy_depth": run_config.data.rarefy_depth,
        "task": "classification" if classifier else "regression",
        "samples": [
            {"fold": f.number, "train": len(f.train), "val": len(f.val), "test": len(f.test)}
            for f in plan
        ],
        "models": {m: _aggregate(per_fold[m], overall[m]) for m in models},
        "difference": difference,
    }
    write_text_atomic(output_dir / "cv_metrics.json", json.dumps(metrics, indent=2) + "\n")
    return CVResult(
        output_dir=output_dir,
        folds=fold_table,
        metrics=metrics,
        summary=_summary(metrics),
        predictions=pooled,
        splits=plan,
    )
