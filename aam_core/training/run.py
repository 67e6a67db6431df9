"""The run skeleton every training command shares: config → output directory → task → loop →
artifacts.

``train`` and ``pretrain`` differ only in their task (:mod:`supervised`, :mod:`pretraining`): the
task supplies batches, losses, validation and what to write at an improvement and at the end.
The :class:`Run` owns the output directory, checkpoints (with optimizer, scheduler and loop
state, so a run resumes exactly), TensorBoard, signals and the run's final state.

With several processes (``--parallel ddp|fsdp`` under torchrun) every process runs all of this:
state dicts are collective (a sharded model's full weights exist only once gathered), decisions
are agreed, and only the global-zero process touches the output directory and logs.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import attrs
import torch
from torch import nn

from aam_core.checkpoint import load_checkpoint
from aam_core.config import RunConfig, TrainConfig, structure, unstructure
from aam_core.errors import AAMError, CheckpointError, ConfigError, RunInterrupted, TrainingError
from aam_core.interfaces import ParallelStrategy
from aam_core.loading import LoadedModel, model_payload, restore
from aam_core.model.aam import AAMModel
from aam_core.options import build_config
from aam_core.outdir import check_output_dir
from aam_core.plugins import get_plugin
from aam_core.training.artifacts import RunWriter
from aam_core.training.loop import LoopResult, Task, Trainer, Validation

log = logging.getLogger("aam")

#: Settings a resumed run may change; every other difference from the checkpoint is refused.
RESUMABLE = {
    ("training", "epochs"),
    ("training", "patience"),
    ("training", "lr"),
    ("training", "categorical_lr"),
    ("training", "device"),
    ("training", "checkpoint_every"),
    ("training", "loader_workers"),
    ("training", "fsdp_sharded_checkpoint"),
}


class RunTask(Task, Protocol):
    """What a task adds to the loop's :class:`Task` for the run skeleton."""

    def log_validation(self, writer: RunWriter, validation: Validation, epoch: int, improved: bool) -> None:
        """TensorBoard entries of one validation beyond the loss and metrics."""

    def on_best(self, writer: RunWriter, validation: Validation, epoch: int) -> None:
        """Files written when validation improves (so a killed run still has them)."""

    def finish(self, writer: RunWriter | None, model: nn.Module, result: LoopResult) -> dict[str, Any]:
        """Final files from the best model; returns the metrics for ``metrics.json``."""


@attrs.frozen
class Resume:
    """A checkpoint to continue from, read once."""

    path: Path
    payload: dict[str, Any] = attrs.field(repr=False)

    @property
    def run_dir(self) -> Path:
        return self.path.parent.parent

    @classmethod
    def open(cls, path: str | Path, kind: str) -> Resume:
        path = Path(path)
        payload = load_checkpoint(path, kind=kind)
        if payload.get("training_state") is None:
            raise CheckpointError(
                f"{path} holds no training state (best.pt never does, nor a format-5 --neighbours "
                "last.pt after migration); resume from checkpoints/last.pt."
            )
        if path.parent.name != "checkpoints":
            raise CheckpointError(f"--resume-from {path} must be the checkpoints/last.pt inside its run directory.")
        return cls(path=path, payload=payload)

    def config(self, options: dict[str, Any]) -> tuple[RunConfig, dict[str, float]]:
        """The checkpoint's config with the allowed flags applied; and the new learning rates
        (``main``/``categorical``) that ``--lr``/``--categorical-lr`` ask for."""
        stored = structure(self.payload["config"], RunConfig, f"config stored in {self.path}")
        output_dir = options.pop("output_dir", None)
        if output_dir is not None and Path(output_dir).resolve() != self.run_dir.resolve():
            raise ConfigError(
                f"--output-dir {output_dir} differs from the run being resumed ({self.run_dir}); a resumed "
                "run continues in its own directory."
            )
        merged = build_config(stored, **options)
        merged.output_dir = str(self.run_dir)
        before, after = unstructure(stored), unstructure(merged)
        for section in ("data", "model", "training"):
            for key, value in after[section].items():
                if before[section].get(key) != value and (section, key) not in RESUMABLE:
                    flag = "--" + key.replace("_", "-")
                    raise ConfigError(
                        f"{flag} {value} differs from the checkpoint's {before[section].get(key)}; a resumed "
                        "run keeps its settings (only --epochs, --patience, --lr, --categorical-lr, "
                        "--device, --checkpoint-every, --loader-workers and --fsdp-sharded-checkpoint may change)."
                    )
        rates = {}
        if "lr" in options:
            rates["main"] = merged.training.lr
        if "categorical_lr" in options:
            rates["categorical"] = merged.training.categorical_lr
        return merged, rates


def load_resume_config(resume_from: str | Path, kind: str, config: Any, options: dict[str, Any]) -> tuple[Resume, RunConfig, dict[str, float]]:
    """``--resume-from``: the checkpoint (read once) and the config the run continues with."""
    if config is not None:
        raise ConfigError("--config cannot be combined with --resume-from: the checkpoint holds the run's config.")
    resume = Resume.open(resume_from, kind)
    merged, rates = resume.config(dict(options))
    return resume, merged, rates


def changed_settings(config: RunConfig) -> list[str]:
    """``--flag value`` for every setting that differs from AAM's default (data paths included)."""
    from aam_core.config import DataConfig

    default = unstructure(RunConfig(data=DataConfig(table=config.data.table), task=config.task))
    current = unstructure(config)
    lines = []
    for section in ("data", "model", "training"):
        for key, value in current[section].items():
            if value != default[section].get(key):
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                if isinstance(value, dict):
                    shown = " ".join(f"{k}={v}" for k, v in value.items())
                lines.append(f"--{key.replace('_', '-')} {shown}")
    return lines


def make_strategy(training: TrainConfig) -> ParallelStrategy:
    """The ``--parallel`` plugin with its options: ``--strategy-option KEY=VALUE`` and the
    strategy flags of the config (``--fsdp-sharded-checkpoint``), which must belong to it."""
    spec = get_plugin("parallel", training.parallel)
    declared = {f.name for f in attrs.fields(spec.options)} if spec.options is not None else set()
    values = dict(training.strategy_options)
    for field in attrs.fields(TrainConfig):
        value = getattr(training, field.name)
        if field.metadata.get("strategy_option") and (field.name in declared or value != field.default):
            values.setdefault(field.name, value)
    return spec.factory(device=training.device, options=spec.make_options(values))


def _all_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The first non-finite tensor's name, else None."""
    return next((name for name, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)


class Run:
    """One training run of any task, from an empty (or resumable) output directory to its files."""

    def __init__(self, config: RunConfig, *, command: str, force: bool, resume: Resume | None, rates: dict[str, float] | None = None):
        if not config.output_dir:
            raise ConfigError("--output-dir is required.")
        self.config, self.command, self.resume = config, command, resume
        self.rates = rates or {}
        self.started = time.perf_counter()
        self.strategy = make_strategy(config.training)
        try:
            self._prepare(force)
        except BaseException:
            self.strategy.teardown()
            raise

    def _prepare(self, force: bool) -> None:
        strategy, config = self.strategy, self.config
        if not strategy.is_global_zero:  # one process tells the story
            log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
            warnings.simplefilter("ignore")
        if self.resume is None:  # one process looks (another may be writing there already), all act
            refusal = None
            if strategy.is_global_zero:
                try:
                    check_output_dir(config.output_dir, force)
                except AAMError as exc:
                    refusal = str(exc)
            refusal = strategy.broadcast(refusal)
            if refusal is not None:
                raise ConfigError(refusal)

    @property
    def device(self) -> torch.device:
        return self.strategy.root_device

    def execute(self, task: RunTask, bundle: LoadedModel, splits: dict[str, list[str]]) -> tuple[LoopResult, dict[str, Any]]:
        """Train ``bundle.model`` on ``task`` and write every artifact; returns the loop result and
        the final metrics. The model ends holding the best epoch's weights (``bundle.model`` is a
        plain copy when the strategy sharded it). Every process calls this."""
        strategy = self.strategy
        try:
            return self._execute(task, bundle, splits)
        finally:
            strategy.teardown()

    def _announce(self) -> None:
        """The settings and the parallel set-up, once the data has been read (a data error then
        prints alone)."""
        strategy, config = self.strategy, self.config
        changed = changed_settings(config)
        log.info(
            "aam %s: settings that differ from the defaults: %s",
            self.command,
            ("\n  " + "\n  ".join(changed)) if changed else "(none)",
        )
        training = config.training
        processes = strategy.world_size
        step = training.batch_size * processes * training.grad_accum
        log.info(
            "Parallel %s: %d process%s on %s; --batch-size %d per process, global batch %d%s.",
            training.parallel,
            processes,
            "" if processes == 1 else "es",
            strategy.root_device,
            training.batch_size,
            training.batch_size * processes,
            f" ({step} samples per optimizer step with --grad-accum {training.grad_accum})" if training.grad_accum > 1 else "",
        )

    def _execute(self, task: RunTask, bundle: LoadedModel, splits: dict[str, list[str]]) -> tuple[LoopResult, dict[str, Any]]:
        self._announce()
        model, strategy = bundle.model, self.strategy
        trainer = Trainer(model, task, self.config.training, strategy, conditioning=AAMModel.conditioning_parameters)
        resume_epoch = 0
        if self.resume is not None:
            trainer.load_state_dict(self.resume.payload["training_state"])
            for line in trainer.set_learning_rates(self.rates):
                log.info("learning rate: %s", line)
            done = trainer.finished()
            if done:
                raise ConfigError(f"Nothing to resume in {self.resume.path}: {done}.")
            resume_epoch = trainer.state.epoch
            where = f"epoch {trainer.state.epoch}" + (f", batch {trainer.state.batch}" if trainer.state.batch else "")
            log.info("Resuming %s from %s (%s).", self.command, self.resume.path, where)
        writer = RunWriter(self.config.output_dir, command=self.command, resume=self.resume is not None) if strategy.is_global_zero else None
        if writer is not None:
            writer.start(self.config, splits, resume_epoch=resume_epoch)
        best_state: dict[str, torch.Tensor] = {}
        sharded = Path(self.config.output_dir) / "checkpoints" / "sharded"

        def weights(where: str) -> dict[str, torch.Tensor]:
            """The full weights (collective; complete on the writing process), checked finite."""
            state = strategy.module_state_dict(trainer.module)
            bad = _all_finite(state) if strategy.is_global_zero else None
            bad = strategy.broadcast(bad)
            if bad is not None:
                raise TrainingError(
                    f"Weights became non-finite ({bad}) {where}; training stopped and the last good "
                    "checkpoint is intact. Try a lower --lr or --grad-clip."
                )
            return state

        def payload(epoch: int, metrics: dict[str, float], state: dict[str, torch.Tensor], training_state: dict[str, Any] | None) -> dict[str, Any]:
            return {**model_payload(bundle, epoch=epoch, metrics=metrics, model_state=state), "training_state": training_state}

        def save_sharded() -> None:
            """The strategy's per-process shards (if it keeps any), written beside the checkpoint
            and swapped in only once every process has finished its part."""
            staging = sharded.with_name("sharded.aamtmp")
            if not strategy.save_sharded_state(trainer.module, trainer.optimizer, staging):
                return
            if writer is not None:
                shutil.rmtree(sharded, ignore_errors=True)
                staging.rename(sharded)
                for path in sorted(sharded.rglob("*")):
                    if path.is_file():
                        writer.record(path)
            strategy.barrier()

        def save_last(training_state: dict[str, Any]) -> None:
            state = weights(f"at epoch {trainer.state.epoch}, step {trainer.state.batch}")
            if writer is not None:
                loop = trainer.state
                writer.save_checkpoint("last.pt", payload(loop.epoch - 1, loop.best_metrics, state, training_state))
            save_sharded()

        def on_epoch(epoch: int, validation: Validation, improved: bool, train_logs: dict[str, float]) -> None:
            state = weights(f"by the end of epoch {epoch}")
            if improved:  # this process's own weights (its shard), to end on the best epoch
                best_state.clear()
                best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            training_state = trainer.state_dict()
            if writer is not None:
                writer.log_scalars({**train_logs, "val/loss": validation.loss, **validation.metrics}, epoch)
                task.log_validation(writer, validation, epoch, improved)
                if improved:
                    writer.save_checkpoint("best.pt", payload(epoch, validation.metrics, state, None))
                    task.on_best(writer, validation, epoch)
                writer.save_checkpoint("last.pt", payload(epoch, trainer.state.best_metrics, state, training_state))
            save_sharded()

        try:
            result = trainer.fit(on_epoch=on_epoch, save=save_last)
            if best_state:
                model.load_state_dict(best_state)
            else:  # resumed after the best epoch: its weights are in best.pt
                best = load_checkpoint(Path(self.config.output_dir) / "checkpoints" / "best.pt", kind=self.config.task)
                strategy.load_module_state_dict(trainer.module, best["model_state"])
            model.eval()
            metrics = task.finish(writer, strategy.unwrap(trainer.module), result)
            metrics["seconds"] = time.perf_counter() - self.started
            if strategy.shards_parameters:  # hand back a model that runs without the process group
                state = strategy.module_state_dict(trainer.module)
                if strategy.is_global_zero:
                    bundle.model = restore(payload(result.best_epoch, result.best_metrics, state, None), self.config.output_dir).model
            if writer is not None:
                writer.write_metrics(metrics)
                writer.finish("completed")
        except RunInterrupted as exc:
            if writer is not None:
                writer.finish("interrupted", str(exc))
            raise
        except BaseException as exc:
            if writer is not None:
                writer.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        log.info("Best epoch %d: %s", result.best_epoch, result.best_summary)
        return result, metrics
