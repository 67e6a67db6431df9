"""The one training loop, shared by every task (fine-tuning on a target; later pretraining).

A task supplies batches, a loss and a validation pass; the loop owns optimisation (AdamW, warmup
+ cosine, clipping, accumulation, mixed precision on CUDA), early stopping, progress and logging.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, Protocol

import attrs
import torch
from torch import nn
from tqdm.auto import tqdm

from aam_core.config import TrainConfig
from aam_core.data.batching import Batch
from aam_core.errors import TrainingError
from aam_core.interfaces import ParallelStrategy
from aam_core.training.schedule import make_optimizer, warmup_cosine

log = logging.getLogger("aam")


@attrs.define
class Validation:
    """One validation pass: ``score`` (lower is better) decides early stopping."""

    score: float
    loss: float
    metrics: dict[str, float]
    summary: str
    payload: Any = None


class Task(Protocol):
    def train_batches(self, epoch: int) -> Iterator[Batch]: ...

    def n_train_batches(self) -> int: ...

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...

    def validate(self, model: nn.Module, autocast: Callable[[], Any]) -> Validation: ...


@attrs.define
class LoopResult:
    best: Validation
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]]


def autocast_factory(device: torch.device, enabled: bool) -> Callable[[], Any]:
    if enabled and device.type == "cuda":
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext


def run_loop(
    model: nn.Module,
    task: Task,
    settings: TrainConfig,
    strategy: ParallelStrategy,
    *,
    conditioning: list[nn.Parameter],
    on_epoch: Callable[[int, Validation, bool, dict[str, float]], None],
) -> LoopResult:
    """Train ``model`` on ``task``; ``on_epoch(epoch, validation, improved, train_logs)`` runs on
    every epoch (writing checkpoints, TensorBoard, files) after validation."""
    module = strategy.setup_module(model)
    optimizer = make_optimizer(model, settings.lr, settings.weight_decay, conditioning, settings.categorical_lr)
    steps_per_epoch = math.ceil(task.n_train_batches() / settings.grad_accum)
    scheduler = warmup_cosine(optimizer, settings.epochs * steps_per_epoch, settings.warmup_fraction)
    autocast = autocast_factory(strategy.root_device, settings.amp)
    best: Validation | None = None
    best_epoch, stale, history = 0, 0, []

    for epoch in range(1, settings.epochs + 1):
        module.train()
        lrs = {f"lr/{group['name']}": group["lr"] for group in optimizer.param_groups}
        started = time.perf_counter()
        totals: dict[str, float] = {}
        n_samples = n_batches = 0
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(
            task.train_batches(epoch),
            total=task.n_train_batches(),
            desc=f"epoch {epoch}/{settings.epochs}",
            unit="batch",
            leave=False,
            disable=None if strategy.is_global_zero else True,
        )
        for i, batch in enumerate(bar, start=1):
            batch = batch.to(strategy.root_device)
            with autocast():
                loss, parts = task.loss(module, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"Loss became {loss.item()} at epoch {epoch}; try a lower --lr.")
            (loss / settings.grad_accum).backward()
            if i % settings.grad_accum == 0 or i == task.n_train_batches():
                if settings.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            n_batches += 1
            n_samples += batch.size
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value
            speed = n_samples / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{totals['loss'] / n_batches:.4f}", samples_s=f"{speed:.1f}")
        bar.close()
        seconds = time.perf_counter() - started
        keys = sorted(totals)
        means = torch.tensor([totals[k] / max(n_batches, 1) for k in keys], device=strategy.root_device)
        means = strategy.all_reduce(means, op="mean").tolist()  # averaged over processes
        train_logs = {f"train/{k}": v for k, v in zip(keys, means, strict=True)}
        train_logs["speed/samples_per_s"] = n_samples / max(seconds, 1e-9)
        train_logs["speed/epoch_seconds"] = seconds
        train_logs.update(lrs)  # the rates this epoch started with

        module.eval()
        with torch.no_grad():
            validation = task.validate(strategy.unwrap(module), autocast)
        improved = best is None or validation.score < best.score
        if improved:
            best, best_epoch, stale = validation, epoch, 0
        else:
            stale += 1
        history.append({"epoch": epoch, **train_logs, "val/loss": validation.loss, **validation.metrics})
        if strategy.is_global_zero:
            log.info(
                "epoch %d/%d  train loss %.4f  val loss %.4f  %s  %.1f samples/s%s",
                epoch,
                settings.epochs,
                train_logs.get("train/loss", float("nan")),
                validation.loss,
                validation.summary,
                train_logs["speed/samples_per_s"],
                "  *best*" if improved else "",
            )
        on_epoch(epoch, validation, improved, train_logs)
        strategy.barrier()
        if settings.patience and stale >= settings.patience:
            log.info("Early stopping: no improvement for %d epochs.", stale)
            break
    assert best is not None
    return LoopResult(best=best, best_epoch=best_epoch, epochs_run=len(history), history=history)
