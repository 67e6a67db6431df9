"""Self-supervised pretraining: UniFrac distances between samples plus masked nucleotides.

No metadata and no target: the encoder learns to place samples so that the Euclidean distances
of their embeddings (through the UniFrac head) equal their exact UniFrac distances, and to recover
whole masked patches of each ASV's sequence. The run skeleton, loop, checkpoints and files are
those of ``train``; only this task differs. ``aam train --pretrained-encoder`` fine-tunes the
result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
from torch import nn

from aam_core.config import PRETRAIN_PENALTIES, RunConfig, read_config_file
from aam_core.data.batching import (
    Batch,
    BatchKey,
    BatchLoader,
    collate,
    default_workers,
    epoch_keys,
)
from aam_core.data.categories import CategoryEncoder
from aam_core.data.dataset import Dataset, load_dataset
from aam_core.data.split import train_val_split
from aam_core.errors import ConfigError
from aam_core.interfaces import ParallelStrategy
from aam_core.loading import LoadedModel, restore
from aam_core.model.aam import AAMModel
from aam_core.model.build import build_model
from aam_core.options import build_config
from aam_core.training import augment, losses
from aam_core.training.artifacts import RunWriter
from aam_core.training.loop import LoopResult, Validation
from aam_core.training.metrics import regression_metrics
from aam_core.training.passes import AsvTable, gather_rows, plan_pass
from aam_core.training.plots import save_predicted_vs_actual
from aam_core.training.run import Run, load_resume_config
from aam_core.training.unifrac_source import distance_source

log = logging.getLogger("aam")


@attrs.frozen
class PretrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    config: RunConfig


@attrs.frozen(eq=False)
class PretrainBatches:
    """The batch of a key: rows collated, UniFrac distances to the key's group, and whole patches
    masked for (seed, epoch, index) — in validation too, as for epoch 0. Holds no model, so
    ``DataLoader`` workers can run it."""

    dataset: Dataset
    max_asvs: int
    bucket: bool
    seed: int
    patch_size: int
    nuc_mask_ratio: float | None  # None: the model has no nucleotide head
    distances: Callable[[np.ndarray], np.ndarray] | None

    def __call__(self, key: BatchKey) -> Batch:
        codes = np.zeros((len(self.dataset), 0), dtype=np.int64)
        batch = collate(self.dataset, key.rows, max_asvs=self.max_asvs, categories=codes, target=None, bucket=self.bucket)
        if self.distances is not None:
            batch = attrs.evolve(batch, distances=torch.from_numpy(key.distances(self.distances)).float())
        if self.nuc_mask_ratio is not None:
            rng = augment.batch_rng(self.seed, key.epoch, key.index, "nucleotides")
            batch = augment.mask_patches(batch, self.patch_size, self.nuc_mask_ratio, rng)
        return batch


class PretrainTask:
    """Batches, losses and validation for UniFrac + masked-nucleotide pretraining."""

    def __init__(
        self,
        *,
        config: RunConfig,
        model: AAMModel,
        dataset: Dataset,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        distances: Callable[[np.ndarray], np.ndarray] | None,
        strategy: ParallelStrategy,
    ):
        self.config, self.model, self.dataset = config, model, dataset
        self.training = config.training
        self.train_rows, self.val_rows = train_rows, val_rows
        self.distances = distances
        self.strategy = strategy
        self.device = strategy.root_device
        cuda = self.device.type == "cuda"
        self.build = PretrainBatches(
            dataset=dataset,
            max_asvs=config.data.max_asvs,
            bucket=cuda,
            seed=self.training.seed,
            patch_size=config.model.patch_size,
            nuc_mask_ratio=self.training.nuc_mask_ratio if model.nucleotide_head is not None else None,
            distances=distances,
        )
        workers = self.training.loader_workers
        self.loader = BatchLoader(self.build, workers=default_workers(self.device) if workers is None else workers, pin_memory=cuda)
        self.sampler = strategy.sampler(len(train_rows), seed=self.training.seed)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        return self.loader(epoch_keys(self.train_rows, self.sampler, epoch, self.training.batch_size, start))

    def n_train_batches(self) -> int:
        return -(-len(self.sampler) // self.training.batch_size)

    def _losses(self, model: nn.Module, batch: Batch, training: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        out = model(batch)
        loss = torch.zeros((), device=batch.mask.device)
        parts: dict[str, torch.Tensor] = {}
        if out.unifrac is not None:
            if training:  # pairs span every process's batch of this step
                strategy = self.strategy
                gathered = strategy.all_gather(out.unifrac.contiguous()).flatten(0, 1)
                offset = strategy.global_rank * batch.size
                unifrac = losses.unifrac_loss(gathered, batch.distances, offset=offset, processes=strategy.world_size)
            else:
                unifrac = losses.unifrac_loss(out.unifrac, batch.distances)
            loss = loss + self.training.unifrac_penalty * unifrac
            parts["unifrac_loss"] = unifrac.detach()
        if out.nucleotides is not None:
            nuc, correct, total = losses.nucleotide_loss(out.nucleotides, batch.nucleotide_target)
            loss = loss + self.training.nuc_penalty * nuc
            parts["nuc_loss"] = nuc.detach()
            parts["nuc_accuracy"] = correct / total.clamp_min(1.0)
        parts["loss"] = loss.detach()
        return loss, parts, out

    def loss(self, model: nn.Module, batch: Batch, epoch: int, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        del epoch, index  # the masks were drawn when the batch was built
        loss, parts, _ = self._losses(model, batch, training=True)
        return loss, parts

    def validate(self, model: nn.Module) -> Validation:
        """Distances of every within-batch pair of validation samples, and masked-nucleotide
        accuracy; the masks are the same at every epoch (drawn as for 'epoch 0'). Shared by every
        process (each batch on one of them), in fp32."""
        strategy, device = self.strategy, self.device
        rows = np.asarray(self.val_rows, dtype=np.int64)
        plan = plan_pass(rows, self.training.batch_size, strategy)
        table = None
        if self.model.nucleotide_head is None:  # masked tokens are per batch; plain ones once
            table = AsvTable.encode(model, self.dataset, rows, max_asvs=self.config.data.max_asvs, strategy=strategy, bucket=device.type == "cuda")
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss × samples, correct, masked
        pairs = []  # [n, 4]: position of a, of b (in rows), true and predicted distance
        for batch, real, start in zip(self.loader(plan.keys), plan.real, plan.starts, strict=True):
            batch = batch.to(device)
            if table is not None:
                batch = table.attach(batch)
            loss, _, out = self._losses(model, batch, training=False)
            if not real:
                continue
            sums[0] += loss.double() * batch.size
            if out.nucleotides is not None:
                _, c, m = losses.nucleotide_loss(out.nucleotides, batch.nucleotide_target)
                sums[1] += c.double()
                sums[2] += m.double()
            if out.unifrac is not None and batch.size > 1:
                predicted, truth = losses.unifrac_pairs(out.unifrac, batch.distances)
                i, j = torch.triu_indices(batch.size, batch.size, offset=1, device=device)
                pairs.append(torch.stack([(i + start).double(), (j + start).double(), truth.double(), predicted.double()], dim=1))
        total, correct, masked = strategy.all_reduce(sums).tolist()
        frame = None
        if self.model.unifrac_head is not None and len(rows) > 1:
            found = gather_rows(strategy, torch.cat(pairs) if pairs else torch.zeros((0, 4), dtype=torch.float64, device=device))
            found = found[torch.argsort(found[:, 0] * len(rows) + found[:, 1])].cpu().numpy()
            ids = np.asarray(self.dataset.sample_ids, dtype=object)[rows]
            a, b = found[:, 0].astype(np.int64), found[:, 1].astype(np.int64)
            actual, predicted = found[:, 2].astype(np.float32), found[:, 3].astype(np.float32)
            frame = pd.DataFrame({"sample_a": ids[a], "sample_b": ids[b], "actual": actual, "predicted": predicted})
        metrics: dict[str, float] = {}
        summary = []
        if frame is not None and len(frame) > 1:
            fit = regression_metrics(frame["actual"], frame["predicted"])
            metrics.update({f"val/unifrac_{k}": v for k, v in fit.items() if k != "n"})
            metrics.update(
                {
                    "val/unifrac_pairs": float(len(frame)),
                    "val/unifrac_true_min": float(frame["actual"].min()),
                    "val/unifrac_true_max": float(frame["actual"].max()),
                    "val/unifrac_pred_min": float(frame["predicted"].min()),
                    "val/unifrac_pred_max": float(frame["predicted"].max()),
                }
            )
            summary.append(f"UniFrac R² {fit['r2']:.3f} · MAE {fit['mae']:.4f}")
        if masked:
            metrics["val/nuc_accuracy"] = correct / masked
            summary.append(f"nucleotide accuracy {correct / masked:.3f}")
        loss = total / max(len(rows), 1)
        return Validation(score=loss, loss=loss, metrics=metrics, summary=" · ".join(summary), payload=frame)

    # -- files ----------------------------------------------------------------------------------
    def log_validation(self, writer: RunWriter, validation: Validation, epoch: int, improved: bool) -> None:
        frame = validation.payload
        if improved and frame is not None:
            from aam_core.training.plots import predicted_vs_actual_figure

            figure = predicted_vs_actual_figure(frame["actual"], frame["predicted"], f"UniFrac, validation pairs, epoch {epoch}")
            writer.log_figure("val/unifrac_predicted_vs_true", figure, epoch)

    def on_best(self, writer: RunWriter, validation: Validation, epoch: int) -> None:
        frame = validation.payload
        if frame is None:
            return
        writer.write_table("val_distances.tsv", frame.assign(epoch=epoch))
        path = writer.path / "plots" / "unifrac_predicted_vs_true.png"
        writer.record(save_predicted_vs_actual(frame["actual"], frame["predicted"], path, f"UniFrac distance — validation pairs, epoch {epoch}"))

    def finish(self, writer: RunWriter | None, model: nn.Module, result: LoopResult) -> dict[str, Any]:
        with torch.no_grad():
            best = self.validate(model)
        if writer is not None:
            self.on_best(writer, best, result.best_epoch)
        return {
            "best_epoch": result.best_epoch,
            "best_metric": "val loss",
            "epochs_run": result.epochs_run,
            "n_train": len(self.train_rows),
            "n_val": len(self.val_rows),
            "val": {k.removeprefix("val/"): v for k, v in best.metrics.items()},
            "val_loss": best.loss,
            "history": result.history,
        }


def _with_task_defaults(config: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``--unifrac-penalty`` and ``--nuc-penalty`` default to 1 for pretraining unless a flag or
    the config file sets them."""
    stored = read_config_file(config).get("training", {}) if isinstance(config, str | Path) else {}
    if isinstance(config, RunConfig):
        stored = {"unifrac_penalty": config.training.unifrac_penalty, "nuc_penalty": config.training.nuc_penalty}
    return {**{k: v for k, v in PRETRAIN_PENALTIES.items() if k not in stored}, **options}


def pretrain(
    config: RunConfig | str | Path | None = None,
    *,
    force: bool = False,
    resume_from: str | Path | None = None,
    **options: Any,
) -> PretrainResult:
    """Pretrain an encoder on a table and a tree (``tree=``) or a UniFrac matrix
    (``unifrac_matrix=``): no metadata needed. Flat ``options`` use the CLI's names."""
    rates: dict[str, float] = {}
    resume = None
    if resume_from is not None:
        resume, run_config, rates = load_resume_config(resume_from, "pretrain", config, options)
    else:
        run_config = build_config(config, task="pretrain", **_with_task_defaults(config, options))
    data, training = run_config.data, run_config.training
    if training.unifrac_penalty == 0 and training.nuc_penalty == 0:
        raise ConfigError("--unifrac-penalty and --nuc-penalty are both 0: pretraining would learn nothing.")
    if training.unifrac_penalty > 0:
        if not (data.tree or data.unifrac_matrix):
            raise ConfigError("aam pretrain needs --tree or --unifrac-matrix for the UniFrac loss (or --unifrac-penalty 0).")
        if training.batch_size < 2:
            raise ConfigError("--batch-size must be at least 2: the UniFrac loss compares pairs of samples.")
    if training.pretrained_encoder or training.freeze_base:
        raise ConfigError("--pretrained-encoder/--freeze-base apply to 'aam train', not to pretraining.")
    run = Run(run_config, command="pretrain", force=force, resume=resume, rates=rates)
    dataset = load_dataset(data, target_required=False, keep_all=False)
    distances = distance_source(data, dataset) if training.unifrac_penalty > 0 else None
    if resume is not None:
        splits = {name: (resume.run_dir / f"{name}_samples.txt").read_text().split() for name in ("train", "val")}
    else:
        train_ids, val_ids = train_val_split(dataset.sample_ids, data.val_fraction, training.seed)
        splits = {"train": train_ids, "val": val_ids}
    train_rows, val_rows = dataset.rows_of(splits["train"]), dataset.rows_of(splits["val"])
    log.info("%d training and %d validation samples, %d ASVs.", len(train_rows), len(val_rows), dataset.counts.shape[1])
    if resume is not None:
        model = restore(resume.payload, resume.path, str(run.device)).model
        model.train()
    else:
        torch.manual_seed(training.seed)
        model = build_model(run_config, out_dim=None, category_sizes=[], scaling=None)
    model.to(run.device)
    log.info("Model: %s parameters on %s.", f"{sum(p.numel() for p in model.parameters()):,}", run.device)
    task = PretrainTask(
        config=run_config,
        model=model,
        dataset=dataset,
        train_rows=train_rows,
        val_rows=val_rows,
        distances=distances,
        strategy=run.strategy,
    )
    bundle = LoadedModel(config=run_config, model=model, encoder=CategoryEncoder(columns=[]), encoding=None, device=run.device)
    result, metrics = run.execute(task, bundle, splits)
    return PretrainResult(output_dir=Path(run_config.output_dir), metrics=metrics, best_epoch=result.best_epoch, config=run_config)
