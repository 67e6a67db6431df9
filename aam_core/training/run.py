"""``train()``: from a config to a trained model and a complete output directory.

Everything that can fail on user input (plugins, options, files, columns, the transform) is
checked before the output directory is touched.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from aam_core.config import RunConfig
from aam_core.data.categories import CategoryEncoder
from aam_core.data.dataset import Dataset, load_dataset
from aam_core.data.samples import resolve_split
from aam_core.data.split import train_val_split
from aam_core.errors import ConfigError, DataError
from aam_core.files import check_output_dir
from aam_core.inference import LoadedModel, checkpoint_payload
from aam_core.model.build import build_model
from aam_core.options import build_config
from aam_core.plugins import get_plugin
from aam_core.training.artifacts import RunWriter
from aam_core.training.checkpoint import save_checkpoint
from aam_core.training.loop import Validation, run_loop
from aam_core.training.metrics import compute_metrics
from aam_core.training.supervised import SupervisedTask, TargetEncoding

log = logging.getLogger("aam")


@attrs.frozen
class TrainResult:
    """What ``train`` returns: best validation metrics (original units) and the best model."""

    output_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    predictions: pd.DataFrame
    model: LoadedModel
    config: RunConfig


def _warn_combinations(config: RunConfig, explicit: set[str]) -> None:
    """One line per redundant or meaningless combination."""
    data, model = config.data, config.model
    if not data.categorical_columns:
        if "fusion" in explicit or model.fusion_options:
            warnings.warn(
                f"--fusion {model.fusion} has no effect without --categorical-columns.", stacklevel=3
            )
    if config.training.categorical_lr and not (data.categorical_columns or model.conditional_output_scaling):
        warnings.warn("--categorical-lr has no effect without --categorical-columns.", stacklevel=3)
    column = model.conditional_output_scaling
    if column and column not in data.categorical_columns:
        warnings.warn(
            f"--conditional-output-scaling {column}: '{column}' is not in --categorical-columns; "
            "it scales the output but is not a model input.",
            stacklevel=3,
        )
    if model.out_dim != 1 and not model.classifier:
        raise ConfigError(f"--out-dim {model.out_dim}: a regression target column has one output; use 1.")
    if model.classifier and config.training.target_transform != "none" and "target_transform" in explicit:
        warnings.warn("--target-transform is ignored with --classifier.", stacklevel=3)


def _split(config: RunConfig, dataset: Dataset, train_samples, val_samples) -> tuple[list[str], list[str]]:
    if (train_samples is None) != (val_samples is None):
        raise ConfigError("Give both train and validation samples, or neither.")
    if train_samples is not None:
        return resolve_split(train_samples, val_samples, dataset)
    strata = dataset.column(config.data.stratify_by) if config.data.stratify_by else None
    return train_val_split(dataset.sample_ids, config.data.val_fraction, config.training.seed, strata)


def _target_encoding(config: RunConfig, dataset: Dataset, train_rows: np.ndarray) -> TargetEncoding:
    if config.model.classifier:
        classes = sorted(set(dataset.target[train_rows]))
        if len(classes) < 2:
            raise DataError(f"--classifier needs at least 2 classes in training, got {classes}.")
        return TargetEncoding(classes=classes, transform=None, transform_categories=None)
    spec = get_plugin("transform", config.training.target_transform)
    transform = spec.factory(options=None)
    by = config.data.normalize_by
    if transform.uses_categories and not by:
        raise ConfigError(f"--target-transform {spec.name} needs --normalize-by <column>.")
    if by and not transform.uses_categories:
        raise ConfigError(f"--normalize-by applies only to zscore-category, not '{spec.name}'.")
    categories = dataset.column(by) if by else None
    transform.fit(dataset.target[train_rows], None if categories is None else categories[train_rows])
    return TargetEncoding(classes=None, transform=transform, transform_categories=categories)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def train(
    config: RunConfig | str | Path | None = None,
    *,
    force: bool = False,
    train_samples: list[str] | str | Path | None = None,
    val_samples: list[str] | str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """Train a model. ``config`` is a :class:`RunConfig`, a ``config.json`` path or None; flat
    ``options`` use the CLI's names (``table=``, ``metadata_column=``, ``fusion=``, ``epochs=``...).
    ``train_samples``/``val_samples`` (lists or files of IDs) replace the random split."""
    started = time.perf_counter()
    config = build_config(config, **options)
    if not config.output_dir:
        raise ConfigError("--output-dir is required.")
    check_output_dir(config.output_dir, force)
    fusion_spec = get_plugin("fusion", config.model.fusion)  # checked even when unused
    fusion_spec.make_options(config.model.fusion_options)
    _warn_combinations(config, set(options))
    strategy = get_plugin("parallel", config.training.parallel).factory(device=config.training.device, options=None)
    device = strategy.root_device

    scaling_col = config.model.conditional_output_scaling
    dataset = load_dataset(config.data, classifier=config.model.classifier, extra_columns=(scaling_col,) if scaling_col else ())
    train_ids, val_ids = _split(config, dataset, train_samples, val_samples)
    train_rows, val_rows = dataset.rows_of(train_ids), dataset.rows_of(val_ids)
    log.info("%d training and %d validation samples, %d ASVs.", len(train_rows), len(val_rows), dataset.counts.shape[1])

    columns = list(config.data.categorical_columns)
    encoder_columns = columns + ([scaling_col] if scaling_col and scaling_col not in columns else [])
    encoder = CategoryEncoder.fit(dataset.subset(train_rows), encoder_columns)
    codes = encoder.encode(dataset)
    scaling = encoder.locate(scaling_col)
    encoding = _target_encoding(config, dataset, train_rows)
    out_dim = len(encoding.classes) if encoding.classes else config.model.out_dim

    _seed_everything(config.training.seed)
    model = build_model(config, out_dim=out_dim, category_sizes=encoder.sizes[: len(columns)], scaling=scaling)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("Model: %.2fM parameters on %s; fusion %s.", n_params / 1e6, device, config.model.fusion if columns else "(none)")
    task = SupervisedTask(
        model=model,
        dataset=dataset,
        train_rows=train_rows,
        val_rows=val_rows,
        codes=codes,
        encoding=encoding,
        batch_size=config.training.batch_size,
        max_asvs=config.data.max_asvs,
        seed=config.training.seed,
        target_loss=config.training.target_loss,
        count_loss_weight=config.training.count_loss_weight,
        column_names=columns,
        bucket=device.type == "cuda",
        device=device,
        shard=strategy.shard,
    )
    loaded = LoadedModel(config=config, model=model, encoder=encoder, encoding=encoding, device=device)
    writer = RunWriter(config.output_dir, force=force) if strategy.is_global_zero else None
    if writer is not None:
        writer.start(config, train_ids, val_ids)
    classifier = config.model.classifier
    column = config.data.metadata_column

    best_state: dict[str, torch.Tensor] = {}

    def on_epoch(epoch: int, validation: Validation, improved: bool, train_logs: dict[str, float]) -> None:
        if improved:
            best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        if writer is None:
            return
        frame, trace = validation.payload
        writer.log_scalars({**train_logs, "val/loss": validation.loss, **validation.metrics}, epoch)
        writer.log_scalars({f"fusion/{k}": v for k, v in trace.scalars.items()}, epoch)
        for key, values in trace.values.items():
            writer.log_histogram(f"fusion/{key}", values, epoch)
        payload = checkpoint_payload(loaded, epoch=epoch, metrics=validation.metrics)
        save_checkpoint(writer.checkpoint_dir / "last.pt", payload)
        if improved:
            save_checkpoint(writer.checkpoint_dir / "best.pt", payload)
            writer.write_predictions(frame, epoch, classifier, f"{column} — validation, epoch {epoch}")

    try:
        result = run_loop(model, task, config.training, strategy, conditioning=model.conditioning_parameters(), on_epoch=on_epoch)
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            rows, predicted = task.predict_rows(model, train_rows)
        train_metrics = compute_metrics(dataset.target[rows], predicted, classifier)
        best_frame, _ = result.best.payload
        metrics = {
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "n_train": len(train_rows),
            "n_val": len(val_rows),
            "val": compute_metrics(best_frame["actual"], best_frame["predicted"], classifier),
            "train": train_metrics,
            "target_transform": None if classifier else config.training.target_transform,
            "seconds": time.perf_counter() - started,
            "history": result.history,
        }
        if writer is not None:
            writer.write_metrics(metrics)
    finally:
        if writer is not None:
            writer.close()
        strategy.teardown()
    log.info("Best epoch %d: %s", result.best_epoch, result.best.summary)
    return TrainResult(
        output_dir=Path(config.output_dir),
        metrics=metrics,
        best_epoch=result.best_epoch,
        predictions=best_frame,
        model=loaded,
        config=config,
    )
