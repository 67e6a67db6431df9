"""The one training loop, shared by every task (fine-tuning on a target, pretraining).

A task supplies batches, a loss and a validation pass; the :class:`Trainer` owns optimisation
(AdamW, warmup + cosine, clipping, accumulation, mixed precision on CUDA), early stopping,
progress, and its own resumable state: optimizer, scheduler and the loop position, down to the
batch inside an epoch. Everything that depends on how many processes there are goes through the
:class:`~aam_core.interfaces.ParallelStrategy`: setting up the module and optimizer, skipping the
gradient synchronisation on accumulation micro-batches, clipping, the collective state dicts and
every decision the processes must take together.

Resuming exactly rests on one fact: every shuffle and mask is a function of (seed, epoch, batch),
never of a global random stream — dropout included: the global stream is reseeded from (seed,
epoch, batch, process) before each step, so no process's random state needs saving or gathering.
A batch position is saved only at optimizer-step boundaries.

On a GPU the host never waits for the device inside a step: losses accumulate on the device, and
non-finite values, stop signals and the checkpoint timer are looked at together every
``check_every`` steps (one small all-reduce when there are several processes).
"""

from __future__ import annotations

import logging
import math
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
from aam_core.errors import ConfigError, RunInterrupted, TrainingError
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
    world_size: int = 1  # processes that trained it (a batch position means a share of theirs)


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


def step_seed(seed: int, epoch: int, index: int, rank: int) -> int:
    """The global random stream's seed for batch ``index`` of ``epoch`` on process ``rank``."""
    return int(np.random.SeedSequence([seed, epoch, index, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


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
    ``on_epoch(epoch, validation, improved, train_logs)`` after each validation. Both are called
    on every process (the state dicts are collective); the run decides which one writes.
    ``conditioning(model)`` names the parameters of the ``--categorical-lr`` group, asked of the
    set-up model (whose parameters a sharding strategy has replaced).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        settings: TrainConfig,
        strategy: ParallelStrategy,
        *,
        conditioning: Callable[[nn.Module], list[nn.Parameter]],
    ):
        self.model, self.task, self.settings, self.strategy = model, task, settings, strategy

        def optimizer_for(module: nn.Module) -> torch.optim.Optimizer:
            return make_optimizer(module, settings.lr, settings.weight_decay, conditioning(module), settings.categorical_lr)

        self.module, self.optimizer = strategy.setup(model, optimizer_for)
        self.steps_per_epoch = math.ceil(task.n_train_batches() / settings.grad_accum)
        self.scheduler = warmup_cosine(self.optimizer, settings.epochs * self.steps_per_epoch, settings.warmup_fraction)
        self.autocast = autocast_factory(strategy.root_device, settings.amp)
        self.state = LoopState(world_size=strategy.world_size)
        # Asking a CUDA loss whether it is finite waits for the GPU; look every N steps instead.
        self.check_every = 1 if strategy.root_device.type == "cpu" else 25

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimizer, scheduler and loop position (collective: call on every process)."""
        return {
            "optimizer": self.strategy.optimizer_state_dict(self.module, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None,  # bfloat16 autocast needs no gradient scaler
            "loop": attrs.asdict(self.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        loop = LoopState(**{**state["loop"], "world_size": state["loop"].get("world_size", 1)})
        if loop.batch and loop.world_size != self.strategy.world_size:
            raise ConfigError(
                f"This checkpoint stopped inside epoch {loop.epoch} with {loop.world_size} process(es); "
                f"resume it with {loop.world_size}, not {self.strategy.world_size} (a batch position is a "
                "share of that many processes), or from a checkpoint saved at an epoch end."
            )
        self.strategy.load_optimizer_state_dict(self.module, self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        loop.world_size = self.strategy.world_size
        self.state = loop

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
            self.strategy.clip_gradients(self.module, self.settings.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1

    def _agree(self, *flags: bool | torch.Tensor) -> list[bool]:
        """Decisions every process takes together: true on one process, true on all."""
        if self.strategy.world_size == 1:
            return [bool(f) for f in flags]
        device = self.strategy.root_device
        local = torch.stack([torch.as_tensor(f, device=device).float().reshape(()) for f in flags])
        return [bool(v) for v in self.strategy.all_reduce(local, op="max").tolist()]

    def _raise_non_finite(self, value: float, index: int) -> None:
        raise TrainingError(
            f"Loss became {value} at epoch {self.state.epoch}, step {index} (batch {index} of "
            f"{self.task.n_train_batches()}); training stopped and checkpoints/last.pt from before "
            "it is intact. Try a lower --lr or --grad-clip."
        )

    def _train_epoch(self, save: Callable[[dict[str, Any]], None], stop: StopSignal) -> None:
        state, settings, task, strategy = self.state, self.settings, self.task, self.strategy
        n_batches = task.n_train_batches()
        device = strategy.root_device
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
            disable=None if strategy.is_global_zero else True,
        )
        for index, batch in enumerate(bar, start=state.batch + 1):
            boundary = index % settings.grad_accum == 0 or index == n_batches
            batch = batch.to(device)
            torch.manual_seed(step_seed(settings.seed, state.epoch, index, strategy.global_rank))
            with strategy.no_backward_sync(self.module, skip=not boundary):
                with self.autocast():
                    loss, parts = task.loss(self.module, batch, state.epoch, index)
                if self.check_every == 1:  # on the CPU a look costs nothing: before backward
                    value = float(loss.detach())
                    if self._agree(not math.isfinite(value))[0]:  # here or on another process
                        self._raise_non_finite(value if not math.isfinite(value) else float("nan"), index)
                else:
                    bad |= ~torch.isfinite(loss.detach())
                (loss / settings.grad_accum).backward()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float()
            state.n_samples += batch.size
            if not boundary:
                continue
            # one process reads its own stop flag for free; several agree on it with the rest
            look = index % self.check_every == 0 or index == n_batches or (strategy.world_size == 1 and stop.received is not None)
            due = bool(settings.checkpoint_every) and index % settings.checkpoint_every == 0
            save_now = stopping = False
            if look:
                timer = time.perf_counter() - last_save > CHECKPOINT_SECONDS
                non_finite, stopping, timer = self._agree(bad, stop.received is not None, timer)
                if non_finite:
                    self._raise_non_finite(float("nan"), index)
                save_now = stopping or timer
                if strategy.is_global_zero and "loss" in totals:
                    bar.set_postfix(
                        loss=f"{float(totals['loss']) / index:.4f}",
                        samples_s=f"{state.n_samples / max(time.perf_counter() - started, 1e-9):.1f}",
                    )
            self._optimizer_step()
            state.batch = index
            if index < n_batches and (save_now or due):
                totals = self._shared_totals(totals)
                state.totals = {k: float(v) for k, v in totals.items()}
                state.seconds = time.perf_counter() - started
                save(self.state_dict())
                last_save = time.perf_counter()
                if stopping:
                    raise RunInterrupted(stop.received or signal.SIGTERM, self.state.epoch, index)
        bar.close()
        if self._agree(bad)[0]:
            self._raise_non_finite(float("nan"), n_batches)
        state.totals = {k: float(v) for k, v in totals.items()}
        state.seconds = time.perf_counter() - started

    def _shared_totals(self, totals: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every process's running sums replaced by their mean over processes, so the one saved
        copy resumes every process: the epoch's mean over processes is unchanged (it is linear)."""
        if self.strategy.world_size == 1 or not totals:
            return totals
        keys = sorted(totals)
        means = self.strategy.all_reduce(torch.stack([totals[k].float() for k in keys]), op="mean")
        return dict(zip(keys, means.unbind(), strict=True))

    def _epoch_logs(self) -> dict[str, float]:
        state, strategy = self.state, self.strategy
        keys = sorted(state.totals)
        n = max(state.batch, 1)
        means = torch.tensor([state.totals[k] / n for k in keys], device=strategy.root_device)
        means = strategy.all_reduce(means, op="mean").tolist()  # averaged over processes
        logs = {f"train/{k}": v for k, v in zip(keys, means, strict=True)}
        samples = strategy.all_reduce(torch.tensor(float(state.n_samples), device=strategy.root_device)).item()
        logs["speed/samples_per_s"] = samples / max(state.seconds, 1e-9)  # all processes together
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
                if self._agree(stop.received is not None)[0]:
                    raise RunInterrupted(stop.received or signal.SIGTERM, epoch, None)
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
