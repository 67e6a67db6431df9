"""The one training loop, shared by every task (fine-tuning on a target, pretraining).

A task supplies batches, a loss and a validation pass; the :class:`Trainer` owns optimisation
(AdamW, warmup + cosine, clipping, accumulation, mixed precision on CUDA), early stopping,
progress, and its own resumable state: optimizer, scheduler, RNG streams and the loop position,
down to the batch inside an epoch.

Resuming exactly rests on two facts: every shuffle and mask is a function of (seed, epoch,
batch), never of a global random stream, and the one global stream that is used (dropout) is
saved and restored. A batch position is saved only at optimizer-step boundaries.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, Protocol

import attrs
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from aam_core.config import TrainConfig
from aam_core.data.batching import Batch
from aam_core.errors import RunInterrupted, TrainingError
from aam_core.interfaces import ParallelStrategy
from aam_core.training.schedule import make_optimizer, warmup_cosine

log = logging.getLogger("aam")

#: A mid-epoch ``last.pt`` at least this often when ``--checkpoint-every`` is 0 (seconds).
CHECKPOINT_SECONDS = 600.0


@attrs.define
class Validation:
    """One validation pass: ``score`` (lower is better) decides early stopping and the best epoch."""

    score: float
    loss: float
    metrics: dict[str, float]
    summary: str
    payload: Any = None


class Task(Protocol):
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Batch ``start`` onwards of ``epoch``'s training order (same on every resume)."""

    def n_train_batches(self) -> int: ...

    def loss(self, model: nn.Module, batch: Batch, epoch: int, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted loss and its detached parts for batch ``index`` of ``epoch``."""

    def validate(self, model: nn.Module) -> Validation: ...


@attrs.define
class LoopState:
    """Where the loop is: saved in ``last.pt`` and restored on resume."""

    epoch: int = 1  # the epoch in progress, 1-based
    batch: int = 0  # batches of ``epoch`` already done (an optimizer-step boundary)
    global_step: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    best_metrics: dict[str, float] = attrs.field(factory=dict)
    best_summary: str = ""
    stale: int = 0
    history: list[dict[str, float]] = attrs.field(factory=list)
    totals: dict[str, float] = attrs.field(factory=dict)  # this epoch's summed loss parts
    n_samples: int = 0  # this epoch's samples so far
    seconds: float = 0.0  # this epoch's training time so far
    epoch_lrs: dict[str, float] = attrs.field(factory=dict)  # the rates this epoch started with


@attrs.define
class LoopResult:
    best_score: float
    best_epoch: int
    best_metrics: dict[str, float]
    best_summary: str
    epochs_run: int
    history: list[dict[str, float]]


def autocast_factory(device: torch.device, enabled: bool) -> Callable[[], Any]:
    if enabled and device.type == "cuda":
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext


def rng_state() -> dict[str, Any]:
    """Every global random stream, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


class StopSignal:
    """SIGINT/SIGTERM set a flag the loop reads at the next step boundary; a second signal
    stops at once. Installed only in the main thread (signal handlers cannot be set elsewhere)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        if self.received is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.received = signum
        log.warning("Received %s: saving checkpoints/last.pt at the next step, then stopping.", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Trainer:
    """Optimizer, schedule and loop state for one model and task.

    ``save(state_dict)`` is called whenever ``last.pt`` should be written mid-epoch (every
    ``--checkpoint-every`` steps, every 10 minutes, and when a stop signal arrives);
    ``on_epoch(epoch, validation, improved, train_logs)`` after each validation.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        settings: TrainConfig,
        strategy: ParallelStrategy,
        *,
        conditioning: list[nn.Parameter],
    ):
        self.model, self.task, self.settings, self.strategy = model, task, settings, strategy
        self.module = strategy.setup_module(model)
        self.optimizer = make_optimizer(
            model, settings.lr, settings.weight_decay, conditioning, settings.categorical_lr
        )
        self.steps_per_epoch = math.ceil(task.n_train_batches() / settings.grad_accum)
        self.scheduler = warmup_cosine(self.optimizer, settings.epochs * self.steps_per_epoch, settings.warmup_fraction)
        self.autocast = autocast_factory(strategy.root_device, settings.amp)
        self.state = LoopState()
        # Checking a CUDA loss for NaN every step would wait on the GPU; check every N steps.
        self.check_every = 1 if strategy.root_device.type == "cpu" else 25

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None,  # bfloat16 autocast needs no gradient scaler
            "rng": rng_state(),
            "loop": attrs.asdict(self.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.state = LoopState(**state["loop"])

    def finished(self) -> str | None:
        """Why the loop has nothing left to do (all epochs run, or early-stopped), else None."""
        state, settings = self.state, self.settings
        if state.epoch > settings.epochs:
            return f"it already ran its {settings.epochs} epochs (raise --epochs to continue)"
        if settings.patience and state.stale >= settings.patience:
            return f"it stopped early after {state.stale} epochs without improvement (raise --patience to continue)"
        return None

    def set_learning_rates(self, rates: dict[str, float]) -> list[str]:
        """New peak rates per group name (``main``, ``categorical``); the schedule continues from
        its position at the new rates. Returns ``'<old> → <new>'`` lines for the log."""
        changes = []
        for i, group in enumerate(self.optimizer.param_groups):
            new = rates.get(group["name"])
            if new is None:
                continue
            old = self.scheduler.base_lrs[i]
            factor = group["lr"] / old if old else 1.0
            self.scheduler.base_lrs[i] = new
            group["initial_lr"] = new
            group["lr"] = new * factor
            changes.append(f"{group['name']} {old:g} → {new:g}")
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        return changes

    # -- the loop -------------------------------------------------------------------------------
    def _optimizer_step(self) -> None:
        if self.settings.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1

    def _raise_non_finite(self, value: float, index: int) -> None:
        raise TrainingError(
            f"Loss became {value} at epoch {self.state.epoch}, step {index} (batch {index} of "
            f"{self.task.n_train_batches()}); training stopped and checkpoints/last.pt from before "
            "it is intact. Try a lower --lr or --grad-clip."
        )

    def _train_epoch(self, save: Callable[[dict[str, Any]], None], stop: StopSignal) -> None:
        state, settings, task = self.state, self.settings, self.task
        n_batches = task.n_train_batches()
        device = self.strategy.root_device
        totals = {k: torch.tensor(v, device=device) for k, v in state.totals.items()}
        bad = torch.zeros((), dtype=torch.bool, device=device)
        started = time.perf_counter() - state.seconds
        last_save = time.perf_counter()
        self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(
            task.train_batches(state.epoch, state.batch),
            total=n_batches,
            initial=state.batch,
            desc=f"epoch {state.epoch}/{settings.epochs}",
            unit="batch",
            leave=False,
            disable=None if self.strategy.is_global_zero else True,
        )
        for index, batch in enumerate(bar, start=state.batch + 1):
            batch = batch.to(device)
            with self.autocast():
                loss, parts = task.loss(self.module, batch, state.epoch, index)
            if self.check_every == 1:
                if not torch.isfinite(loss):
                    self._raise_non_finite(loss.item(), index)
            else:
                bad |= ~torch.isfinite(loss.detach())
            (loss / settings.grad_accum).backward()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float()
            state.n_samples += batch.size
            boundary = index % settings.grad_accum == 0 or index == n_batches
            if not boundary:
                continue
            if self.check_every > 1 and (index % self.check_every == 0 or index == n_batches) and bool(bad):
                self._raise_non_finite(float("nan"), index)
            self._optimizer_step()
            state.batch = index
            if index % 10 == 0 or index == n_batches:
                speed = state.n_samples / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{float(totals['loss']) / index:.4f}", samples_s=f"{speed:.1f}")
            due = settings.checkpoint_every and index % settings.checkpoint_every == 0
            if index < n_batches and (stop.received is not None or due or time.perf_counter() - last_save > CHECKPOINT_SECONDS):
                if bool(bad):
                    self._raise_non_finite(float("nan"), index)
                state.totals = {k: float(v) for k, v in totals.items()}
                state.seconds = time.perf_counter() - started
                save(self.state_dict())
                last_save = time.perf_counter()
                if stop.received is not None:
                    raise RunInterrupted(stop.received, self.state.epoch, index)
        bar.close()
        state.totals = {k: float(v) for k, v in totals.items()}
        state.seconds = time.perf_counter() - started

    def _epoch_logs(self) -> dict[str, float]:
        state = self.state
        keys = sorted(state.totals)
        n = max(state.batch, 1)
        means = torch.tensor([state.totals[k] / n for k in keys], device=self.strategy.root_device)
        means = self.strategy.all_reduce(means, op="mean").tolist()  # averaged over processes
        logs = {f"train/{k}": v for k, v in zip(keys, means, strict=True)}
        logs["speed/samples_per_s"] = state.n_samples / max(state.seconds, 1e-9)
        logs["speed/epoch_seconds"] = state.seconds
        return logs

    def fit(
        self,
        *,
        on_epoch: Callable[[int, Validation, bool, dict[str, float]], None],
        save: Callable[[dict[str, Any]], None],
    ) -> LoopResult:
        """Train from the current state to the last epoch (or early stop)."""
        settings, state = self.settings, self.state
        with StopSignal() as stop:
            while state.epoch <= settings.epochs:
                if settings.patience and state.stale >= settings.patience:
                    break
                if state.batch == 0:
                    state.epoch_lrs = {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}
                self._train_epoch(save, stop)
                train_logs = {**self._epoch_logs(), **state.epoch_lrs}
                self.module.eval()
                with torch.no_grad():  # fp32: what is written equals what 'aam predict' gives
                    last = self.task.validate(self.strategy.unwrap(self.module))
                improved = state.best_score is None or last.score < state.best_score
                if improved:
                    state.best_score, state.best_epoch, state.stale = last.score, state.epoch, 0
                    state.best_metrics, state.best_summary = dict(last.metrics), last.summary
                else:
                    state.stale += 1
                state.history.append({"epoch": state.epoch, **train_logs, "val/loss": last.loss, **last.metrics})
                if self.strategy.is_global_zero:
                    log.info(
                        "epoch %d/%d  train loss %.4f  val loss %.4f  %s  %.1f samples/s%s",
                        state.epoch,
                        settings.epochs,
                        train_logs.get("train/loss", float("nan")),
                        last.loss,
                        last.summary,
                        train_logs["speed/samples_per_s"],
                        "  *best*" if improved else "",
                    )
                epoch = state.epoch
                state.epoch, state.batch, state.totals, state.n_samples, state.seconds = epoch + 1, 0, {}, 0, 0.0
                on_epoch(epoch, last, improved, train_logs)
                self.strategy.barrier()
                if stop.received is not None:
                    raise RunInterrupted(stop.received, epoch, None)
                if settings.patience and state.stale >= settings.patience:
                    log.info("Early stopping: no improvement for %d epochs.", state.stale)
                    break
        return LoopResult(
            best_score=state.best_score,
            best_epoch=state.best_epoch,
            best_metrics=state.best_metrics,
            best_summary=state.best_summary,
            epochs_run=len(state.history),
            history=state.history,
        )

