"""Self-supervised pretraining: UniFrac distances between samples plus masked nucleotides.

No metadata and no target: the encoder learns to place samples so that the Euclidean distances
of their embeddings (through the UniFrac head) equal their exact UniFrac distances, and to recover
whole masked patches of each ASV's sequence. The run skeleton, loop, checkpoints and files are
those of ``train``; only this task differs. ``aam train --pretrained-encoder`` fine-tunes the
result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
from torch import nn

from aam_core.config import RunConfig, read_config_file
from aam_core.data.batching import Batch, iter_batches
from aam_core.data.categories import CategoryEncoder
from aam_core.data.dataset import Dataset, load_dataset
from aam_core.data.split import train_val_split
from aam_core.errors import ConfigError
from aam_core.loading import LoadedModel, restore
from aam_core.model.aam import AAMModel
from aam_core.model.build import build_model
from aam_core.options import build_config
from aam_core.training import augment, losses
from aam_core.training.artifacts import RunWriter
from aam_core.training.loop import LoopResult, Validation
from aam_core.training.metrics import regression_metrics
from aam_core.training.plots import save_predicted_vs_actual
from aam_core.training.run import Run, load_resume_config
from aam_core.training.unifrac_source import distance_source

log = logging.getLogger("aam")

#: What ``aam pretrain`` weighs each loss by unless told otherwise.
DEFAULT_PENALTIES = {"unifrac_penalty": 1.0, "nuc_penalty": 1.0}


@attrs.frozen
class PretrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    config: RunConfig


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
        device: torch.device,
        shard: Callable[[Sequence[int]], list[int]] = list,
    ):
        self.config, self.model, self.dataset = config, model, dataset
        self.training = config.training
        self.train_rows, self.val_rows = train_rows, val_rows
        self.distances = distances
        self.device, self.shard = device, shard
        self.codes = np.zeros((len(dataset), 0), dtype=np.int64)

    def _batches(self, rows: np.ndarray, epoch: int, start: int) -> Iterator[Batch]:
        batches = iter_batches(
            self.dataset,
            rows,
            self.training.batch_size,
            max_asvs=self.config.data.max_asvs,
            categories=self.codes,
            target=None,
            bucket=self.device.type == "cuda",
        )
        seed, patch = self.training.seed, self.config.model.patch_size
        for index, batch in enumerate(batches, start=start + 1):
            if self.distances is not None:
                batch = attrs.evolve(batch, distances=torch.from_numpy(self.distances(batch.rows)).float())
            if self.model.nucleotide_head is not None:
                rng = augment.batch_rng(seed, epoch, index, "nucleotides")
                batch = augment.mask_patches(batch, patch, self.training.nuc_mask_ratio, rng)
            yield batch

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = np.random.default_rng((self.training.seed, epoch)).permutation(self.train_rows)
        rows = np.asarray(self.shard(order), dtype=np.int64)[start * self.training.batch_size :]
        return self._batches(rows, epoch, start)

    def n_train_batches(self) -> int:
        return -(-len(self.shard(self.train_rows)) // self.training.batch_size)

    def _losses(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
        out = model(batch)
        loss = torch.zeros((), device=batch.mask.device)
        parts: dict[str, torch.Tensor] = {}
        if out.unifrac is not None:
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
        loss, parts, _ = self._losses(model, batch)
        return loss, parts

    def validate(self, model: nn.Module) -> Validation:
        """Distances of every within-batch pair of validation samples, and masked-nucleotide
        accuracy; the masks are the same at every epoch (drawn as for 'epoch 0')."""
        total, correct, masked = 0.0, 0.0, 0.0
        pairs: list[pd.DataFrame] = []
        for batch in self._batches(self.val_rows, 0, 0):
            batch = batch.to(self.device)
            loss, _, out = self._losses(model, batch)
            total += float(loss) * batch.size
            if out.nucleotides is not None:
                _, c, m = losses.nucleotide_loss(out.nucleotides, batch.nucleotide_target)
                correct, masked = correct + float(c), masked + float(m)
            if out.unifrac is not None and batch.size > 1:
                predicted, truth = losses.unifrac_pairs(out.unifrac, batch.distances)
                i, j = np.triu_indices(batch.size, k=1)
                ids = np.asarray(batch.sample_ids, dtype=object)
                pairs.append(
                    pd.DataFrame(
                        {"sample_a": ids[i], "sample_b": ids[j], "actual": truth.cpu().numpy(), "predicted": predicted.float().cpu().numpy()}
                    )
                )
        metrics: dict[str, float] = {}
        frame = pd.concat(pairs, ignore_index=True) if pairs else None
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
        loss = total / max(len(self.val_rows), 1)
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
    return {**{k: v for k, v in DEFAULT_PENALTIES.items() if k not in stored}, **options}


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
        device=run.device,
        shard=run.strategy.shard,
    )
    bundle = LoadedModel(config=run_config, model=model, encoder=CategoryEncoder(columns=[]), encoding=None, device=run.device)
    result, metrics = run.execute(task, bundle, splits)
    return PretrainResult(output_dir=Path(run_config.output_dir), metrics=metrics, best_epoch=result.best_epoch, config=run_config)
