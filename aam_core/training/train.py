"""``train()``: from a config to a trained model and a complete output directory.

Everything that can fail on user input (plugins, options, files, columns, the transform, the
pretrained encoder) is checked before the output directory is touched.
"""

from __future__ import annotations

import logging
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
from aam_core.data.samples import Samples, check_disjoint, resolve_list
from aam_core.data.split import three_way_split
from aam_core.errors import ConfigError, DataError
from aam_core.loading import LoadedModel, restore
from aam_core.model.aam import AAMModel
from aam_core.model.build import build_model
from aam_core.neighbours import References, neighbour_features
from aam_core.options import build_config
from aam_core.plugins import get_plugin
from aam_core.targets import TargetEncoding
from aam_core.training.encoder_cache import EncoderCache
from aam_core.training.pretrained import load_pretrained_encoder
from aam_core.training.run import Resume, Run, load_resume_config
from aam_core.training.supervised import Split, SupervisedTask
from aam_core.training.unifrac_source import distance_source

log = logging.getLogger("aam")


@attrs.frozen
class TrainResult:
    """What ``train`` returns: metrics (original units) and the best model."""

    output_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    predictions: pd.DataFrame  # val_predictions.tsv: the best model on the validation samples
    model: LoadedModel
    config: RunConfig
    test_predictions: pd.DataFrame | None = None


def _warn_combinations(config: RunConfig, explicit: set[str]) -> None:
    """One line per redundant or meaningless combination."""
    data, model, training = config.data, config.model, config.training
    if not data.categorical_columns:
        if "fusion" in explicit or model.fusion_options:
            warnings.warn(f"--fusion {model.fusion} has no effect without --categorical-columns.", stacklevel=3)
    if "unknown_head" in explicit and model.unknown_head:
        if not data.categorical_columns:
            warnings.warn("--unknown-head has no effect without --categorical-columns.", stacklevel=3)
        elif training.category_dropout == 0:
            warnings.warn("--unknown-head has no effect with --category-dropout 0 (nothing trains it).", stacklevel=3)
    if "category_prediction_weight" in explicit and training.category_prediction_weight > 0:
        if not data.categorical_columns:
            warnings.warn("--category-prediction-weight has no effect without --categorical-columns.", stacklevel=3)
        elif training.category_dropout == 0:
            warnings.warn("--category-prediction-weight has no effect with --category-dropout 0 (no unknown branch).", stacklevel=3)
    if training.categorical_lr and not (data.categorical_columns or model.conditional_output_scaling):
        warnings.warn("--categorical-lr has no effect without --categorical-columns.", stacklevel=3)
    column = model.conditional_output_scaling
    if column and column not in data.categorical_columns:
        warnings.warn(
            f"--conditional-output-scaling {column}: '{column}' is not in --categorical-columns; "
            "it scales the output but is not a model input.",
            stacklevel=3,
        )
    if model.classifier and training.target_transform != "none" and "target_transform" in explicit:
        warnings.warn("--target-transform is ignored with --classifier.", stacklevel=3)
    if training.unifrac_penalty > 0 and not (data.tree or data.unifrac_matrix):
        raise ConfigError("--unifrac-penalty needs --tree or --unifrac-matrix.")
    if (data.tree or data.unifrac_matrix) and training.unifrac_penalty == 0 and config.task == "train":
        warnings.warn("--tree/--unifrac-matrix has no effect without --unifrac-penalty.", stacklevel=3)
    if training.freeze_base and not training.pretrained_encoder:
        raise ConfigError("--freeze-base needs --pretrained-encoder (a randomly initialised encoder would stay random).")
    if "count_loss_weight" in explicit and not model.count_prediction:
        warnings.warn("--count-loss-weight has no effect with --no-count-prediction.", stacklevel=3)
    if "count_mask_ratio" in explicit and not model.count_prediction:
        warnings.warn("--count-mask-ratio has no effect with --no-count-prediction.", stacklevel=3)
    if model.fusion == "cross-attention" and len(data.categorical_columns) == 1 and "fusion" in explicit:
        warnings.warn(
            "--fusion cross-attention over one categorical column: every ASV attends to a single token, "
            "so the attention weights are all 1 and it reduces to a per-category shift; gmu or concat "
            "does the same with fewer parameters.",
            stacklevel=3,
        )


def _warn_split_flags(explicit: set[str], listed: bool) -> None:
    """Split flags mean nothing when the samples are listed."""
    if not listed:
        return
    ignored = [f for f in ("val_fraction", "stratify_by") if f in explicit]
    if ignored:
        flags = ", ".join("--" + f.replace("_", "-") for f in ignored)
        warnings.warn(f"{flags} has no effect with --train-samples/--val-samples.", stacklevel=3)


def _warn_task(config: RunConfig, dataset: Dataset) -> None:
    """A numeric target that looks like categories (few distinct whole numbers, or ID-like codes)."""
    if config.model.classifier:
        return
    values = dataset.target[np.isfinite(dataset.target)]
    distinct = np.unique(values)
    whole = bool(np.all(np.equal(np.mod(distinct, 1), 0)))
    id_like = whole and len(distinct) > 1 and distinct.min() >= 1000 and len(distinct) <= max(20, len(values) // 10)
    if whole and (len(distinct) <= 5 or id_like):
        column = config.data.metadata_column
        shown = ", ".join(f"{v:g}" for v in distinct[:5]) + (", ..." if len(distinct) > 5 else "")
        warnings.warn(
            f"The target '{column}' has only {len(distinct)} distinct whole-number values ({shown}); "
            "if these are categories, pass --classifier.",
            stacklevel=3,
        )


def _warn_batches(config: RunConfig, n_train: int, processes: int = 1) -> None:
    """``processes`` share the training samples (``--batch-size`` is per process)."""
    batch = config.training.batch_size
    share = -(-n_train // processes)
    steps = -(-share // batch) // config.training.grad_accum
    shared = f" over {processes} processes" if processes > 1 else ""
    if batch > share:
        warnings.warn(
            f"--batch-size {batch} is larger than the {n_train} training samples{shared}: every epoch is one step.",
            stacklevel=3,
        )
    elif steps < 10:
        warnings.warn(
            f"Only {steps} optimizer steps per epoch ({n_train} training samples{shared}, --batch-size {batch}"
            f"{', --grad-accum ' + str(config.training.grad_accum) if config.training.grad_accum > 1 else ''}); "
            "a smaller batch size usually trains better.",
            stacklevel=3,
        )


def _split(config: RunConfig, dataset: Dataset, train_samples, val_samples, test_samples) -> dict[str, list[str]]:
    if (train_samples is None) != (val_samples is None):
        given = "--train-samples" if train_samples is not None else "--val-samples"
        raise ConfigError(f"{given} needs the other list too: give both --train-samples and --val-samples, or neither.")
    if test_samples is not None and config.data.test_fraction:
        raise ConfigError("Give --test-samples or --test-fraction, not both.")
    test_ids = resolve_list(test_samples, dataset, "test") if test_samples is not None else []
    if train_samples is not None:
        named = {
            "train": resolve_list(train_samples, dataset, "training"),
            "val": resolve_list(val_samples, dataset, "validation"),
            "test": test_ids,
        }
        check_disjoint(named)
        return named
    held = set(test_ids)
    rows = [i for i, s in enumerate(dataset.sample_ids) if s not in held]
    strata = dataset.column(config.data.stratify_by)[rows] if config.data.stratify_by else None
    train_ids, val_ids, fraction_test = three_way_split(
        [str(dataset.sample_ids[i]) for i in rows],
        config.data.val_fraction,
        config.data.test_fraction,
        config.training.seed,
        strata,
    )
    return {"train": train_ids, "val": val_ids, "test": test_ids or fraction_test}


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


def _references(
    config: RunConfig, model: AAMModel, dataset: Dataset, split: Split, codes: np.ndarray, encoding: TargetEncoding
) -> tuple[References | None, np.ndarray | None]:
    """With ``--neighbours``: the training samples as reference samples, and every sample's
    summary of its nearest ones (a training sample's from the other training samples)."""
    if not model.neighbours:
        return None, None
    target = encoding.encode(dataset.target) if encoding.classifier else dataset.target
    references = References.of(dataset, split.train, codes[:, : model.n_columns], target)
    exclude = np.full(len(dataset), -1, dtype=np.int64)
    exclude[split.train] = np.arange(len(split.train))
    features = neighbour_features(references, dataset, codes, config.model.neighbours, encoding, exclude=exclude)
    log.info("Nearest reference samples: each sample compared with %d training samples (K = %d).", len(references), config.model.neighbours)
    return references, features


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def _read_split(run_dir: Path) -> dict[str, list[str]]:
    out = {}
    for name in ("train", "val", "test"):
        path = run_dir / f"{name}_samples.txt"
        out[name] = [line for line in path.read_text().splitlines() if line] if path.is_file() else []
    if not out["train"] or not out["val"]:
        raise DataError(f"{run_dir} lacks train_samples.txt/val_samples.txt, which a resumed run reuses.")
    return out


def train(
    config: RunConfig | str | Path | None = None,
    *,
    force: bool = False,
    train_samples: Samples | None = None,
    val_samples: Samples | None = None,
    test_samples: Samples | None = None,
    resume_from: str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """Train a model. ``config`` is a :class:`RunConfig`, a ``config.json`` path or None; flat
    ``options`` use the CLI's names (``table=``, ``metadata_column=``, ``fusion=``, ``epochs=``...).
    ``train_samples``/``val_samples`` (lists or files of IDs) replace the random split;
    ``test_samples`` (or ``test_fraction=``) holds a test set out of every selection.
    ``resume_from`` continues the run of a ``checkpoints/last.pt`` in its own directory."""
    resume: Resume | None = None
    rates: dict[str, float] = {}
    config_source = config if isinstance(config, str | Path) else None
    if resume_from is not None:
        if train_samples is not None or val_samples is not None or test_samples is not None:
            raise ConfigError("--train-samples/--val-samples/--test-samples cannot change the split of a resumed run.")
        resume, config, rates = load_resume_config(resume_from, "train", config, options)
    else:
        config = build_config(config, **options)
    if config.task != "train":
        where = f"--config {config_source}" if config_source else "This config"
        raise ConfigError(f"{where} is a pretraining run's config; continue it with 'aam pretrain', or train from a fresh config.")
    fusion_spec = get_plugin("fusion", config.model.fusion)  # checked even when unused
    fusion_spec.make_options(config.model.fusion_options)
    _warn_combinations(config, set(options))
    run = Run(config, command="train", force=force, resume=resume, rates=rates)
    pretrained = load_pretrained_encoder(config) if config.training.pretrained_encoder and resume is None else None

    scaling_col = config.model.conditional_output_scaling
    dataset = load_dataset(config.data, classifier=config.model.classifier, extra_columns=(scaling_col,) if scaling_col else ())
    splits = _read_split(resume.run_dir) if resume else _split(config, dataset, train_samples, val_samples, test_samples)
    split = Split(*(dataset.rows_of(splits[name]) for name in ("train", "val", "test")))
    if resume is None:
        _warn_split_flags(set(options), train_samples is not None)
        _warn_task(config, dataset)
        _warn_batches(config, len(split.train), run.strategy.world_size)
    log.info(
        "%d training, %d validation%s samples, %d ASVs.",
        len(split.train),
        len(split.val),
        f" and {len(split.test)} test" if len(split.test) else "",
        dataset.counts.shape[1],
    )
    distances = distance_source(config.data, dataset) if config.training.unifrac_penalty > 0 else None

    columns = list(config.data.categorical_columns)
    if resume is not None:
        bundle = restore(resume.payload, resume.path, str(run.device))
        model, encoder, encoding = bundle.model, bundle.encoder, bundle.encoding
        if encoding.transform is not None and config.data.normalize_by:
            encoding = attrs.evolve(encoding, transform_categories=dataset.column(config.data.normalize_by))
        model.train()
    else:
        encoder_columns = columns + ([scaling_col] if scaling_col and scaling_col not in columns else [])
        encoder = CategoryEncoder.fit(dataset.subset(split.train), encoder_columns)
        encoding = _target_encoding(config, dataset, split.train)
        out_dim = len(encoding.classes) if encoding.classes else 1
        _seed_everything(config.training.seed)
        model = build_model(config, out_dim=out_dim, category_sizes=encoder.sizes[: len(columns)], scaling=encoder.locate(scaling_col))
        if pretrained is not None:
            pretrained.load_into(model)
    if config.training.freeze_base:
        model.asv_encoder.requires_grad_(False)
    model.to(run.device)
    codes = encoder.encode(dataset)
    references, neighbours = _references(config, model, dataset, split, codes, encoding)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "Model: %s parameters (%s trainable) on %s; fusion %s.",
        f"{n_params:,}",
        f"{n_trainable:,}",
        run.device,
        config.model.fusion if columns else "(none)",
    )
    task = SupervisedTask(
        config=config,
        model=model,
        dataset=dataset,
        split=split,
        codes=codes,
        encoding=encoding,
        strategy=run.strategy,
        distances=distances,
        cache=EncoderCache(model.asv_encoder) if config.training.freeze_base else None,
        neighbours=neighbours,
    )
    bundle = LoadedModel(config=config, model=model, encoder=encoder, encoding=encoding, device=run.device, references=references)
    result, metrics = run.execute(task, bundle, splits)
    return TrainResult(
        output_dir=Path(config.output_dir),
        metrics=metrics,
        best_epoch=result.best_epoch,
        predictions=task.final["val"],
        model=bundle,
        config=config,
        test_predictions=task.final.get("test"),
    )
