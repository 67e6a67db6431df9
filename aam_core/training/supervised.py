"""The fine-tuning task: predict a metadata column (regression or classification).

Targets enter the model in transformed units; everything leaving this task — predictions,
metrics, summaries, files — is inverse-transformed to original units first. Optional auxiliary
objectives: hidden-abundance prediction (``--count-prediction``) and UniFrac distances
(``--unifrac-penalty`` with ``--tree``/``--unifrac-matrix``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
from torch import nn

from aam_core.config import RunConfig
from aam_core.data.batching import (
    Batch,
    BatchKey,
    BatchLoader,
    collate,
    default_workers,
    epoch_keys,
)
from aam_core.data.dataset import Dataset
from aam_core.errors import ConfigError, TrainingError
from aam_core.interfaces import ParallelStrategy
from aam_core.model.aam import AAMModel, ModelOutput
from aam_core.predictions import predictions_frame, read_probabilities
from aam_core.targets import TargetEncoding
from aam_core.training import augment, losses
from aam_core.training.artifacts import RunWriter
from aam_core.training.encoder_cache import EncoderCache
from aam_core.training.loop import LoopResult, Validation
from aam_core.training.metrics import (
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    classification_report,
    compute_metrics,
    format_metrics,
)
from aam_core.training.passes import AsvTable, gather_rows, in_order, plan_pass
from aam_core.training.plots import (
    predicted_vs_actual_figure,
    save_classification_plots,
    save_predicted_vs_actual,
    save_training_curves,
)

log = logging.getLogger("aam")


@attrs.frozen
class Split:
    """Dataset rows of each side of the split (``test`` may be empty)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))


@attrs.define
class FusionTrace:
    """Fusion extras gathered over a validation pass, for TensorBoard."""

    scalars: dict[str, float]
    values: dict[str, torch.Tensor]


@attrs.define
class Predictions:
    """One pass over some rows: original-unit predictions (and class probabilities)."""

    rows: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray | None
    loss: float
    trace: FusionTrace
    #: model output for the same rows with every category hidden (``unknown=True`` passes)
    unknown_raw: np.ndarray | None = None


@attrs.frozen(eq=False)
class SupervisedBatches:
    """The batch of a key: rows collated, UniFrac distances to the key's group, and in training
    the category dropout and hidden abundances drawn for (seed, epoch, index). Holds no model,
    so ``DataLoader`` workers can run it."""

    dataset: Dataset
    codes: np.ndarray
    target: np.ndarray
    #: the target with categories hidden (the unknown branch's), when it differs from ``target``
    hidden_target: np.ndarray | None
    max_asvs: int
    bucket: bool
    seed: int
    category_dropout: float
    count_mask_ratio: float | None  # None: the model hides no abundances
    distances: Callable[[np.ndarray], np.ndarray] | None
    neighbours: np.ndarray | None = None  # [n, 2, F] nearest-reference summaries (dataset rows)

    def __call__(self, key: BatchKey) -> Batch:
        batch = collate(self.dataset, key.rows, max_asvs=self.max_asvs, categories=self.codes, target=self.target, bucket=self.bucket)
        if self.neighbours is not None:
            batch = attrs.evolve(batch, neighbours=torch.from_numpy(self.neighbours[key.rows]))
        if self.distances is not None:
            batch = attrs.evolve(batch, distances=torch.from_numpy(key.distances(self.distances)).float())
        if not key.training:
            return batch
        seed, epoch, index = self.seed, key.epoch, key.index
        if self.category_dropout > 0 and self.codes.shape[1]:
            hidden = None if self.hidden_target is None else torch.as_tensor(self.hidden_target[key.rows])
            batch = attrs.evolve(batch, unknown_branch=True, unknown_target=hidden)
        if self.count_mask_ratio is not None:
            batch = augment.hide_abundances(batch, self.count_mask_ratio, augment.batch_rng(seed, epoch, index, "counts"))
        return batch


class SupervisedTask:
    """Batches, loss and validation for one train/validation(/test) split."""

    def __init__(
        self,
        *,
        config: RunConfig,
        model: AAMModel,
        dataset: Dataset,
        split: Split,
        codes: np.ndarray,
        encoding: TargetEncoding,
        strategy: ParallelStrategy,
        distances: Callable[[np.ndarray], np.ndarray] | None = None,
        cache: EncoderCache | None = None,
        neighbours: np.ndarray | None = None,
    ):
        self.config = config
        self.model = model
        self.dataset, self.split, self.codes, self.encoding = dataset, split, codes, encoding
        self.model_target = encoding.encode(dataset.target)
        #: what the unknown branch learns: the target encoded without the categories (differs
        #: only for a per-category transform, whose per-category units it could not know)
        self.hidden_target = encoding.hidden().encode(dataset.target) if encoding.transform_categories is not None else None
        self.training = config.training
        self.column = config.data.metadata_column
        self.column_names = list(config.data.categorical_columns)
        self.strategy = strategy
        self.device = strategy.root_device
        self.distances = distances if model.unifrac_head is not None else None
        self.cache = cache
        self.build = SupervisedBatches(
            dataset=dataset,
            codes=codes,
            target=self.model_target,
            hidden_target=self.hidden_target,
            max_asvs=config.data.max_asvs,
            bucket=self.device.type == "cuda",
            seed=self.training.seed,
            category_dropout=self.training.category_dropout,
            count_mask_ratio=self.training.count_mask_ratio if model.sample_encoder.hidden_abundance is not None else None,
            distances=self.distances,
            neighbours=neighbours,
        )
        workers = self.training.loader_workers
        self.loader = BatchLoader(
            self.build,
            workers=default_workers(self.device) if workers is None else workers,
            pin_memory=self.device.type == "cuda",
        )
        self.sampler = strategy.sampler(len(split.train), seed=self.training.seed)
        #: The best model's predictions (``val``, and ``test`` when held out), set by ``finish``.
        self.final: dict[str, pd.DataFrame] = {}

    # -- batches --------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This process's batches of ``epoch`` from batch ``start + 1`` (its shard of the same
        seeded order on every process)."""
        return self.loader(epoch_keys(self.split.train, self.sampler, epoch, self.training.batch_size, start))

    def n_train_batches(self) -> int:
        return -(-len(self.sampler) // self.training.batch_size)

    # -- losses ---------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, batch: Batch) -> ModelOutput:
        if self.cache is not None:
            batch = self.cache.attach(batch, self.dataset.sequences)
        return model(batch)

    def _unifrac(self, out: ModelOutput, batch: Batch, training: bool) -> torch.Tensor:
        """In training, pairs span every process's batch of this step (embeddings gathered with
        their gradient); in evaluation, the pairs of the batch."""
        if not training:
            return losses.unifrac_loss(out.unifrac, batch.distances)
        strategy = self.strategy
        gathered = strategy.all_gather(out.unifrac.contiguous()).flatten(0, 1)
        offset = strategy.global_rank * batch.size
        return losses.unifrac_loss(gathered, batch.distances, offset=offset, processes=strategy.world_size)

    def _head_loss(
        self, prediction: torch.Tensor, own: torch.Tensor | None, target: torch.Tensor, parts: dict[str, torch.Tensor], name: str
    ) -> torch.Tensor:
        """The target loss of one head's prediction (logged as ``<name>_loss``), plus that of its
        own output before the gate towards the reference samples where it has one
        (``<name>_own_loss``; the gate sees that output detached)."""
        kind, classifier = self.training.target_loss, self.encoding.classifier
        loss = losses.target_loss(prediction, target, classifier, kind)
        parts[f"{name}_loss"] = loss.detach()
        if own is not None:
            mine = losses.target_loss(own, target, classifier, kind)
            parts[f"{name}_own_loss"] = mine.detach()
            loss = loss + mine
        return loss

    def loss(self, model: nn.Module, batch: Batch, epoch: int, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        del epoch, index  # augmentations were drawn when the batch was built
        out = self._forward(model, batch)
        parts: dict[str, torch.Tensor] = {}
        loss = self._head_loss(out.prediction, out.own_prediction, batch.target, parts, "target")
        if out.unknown_prediction is not None:  # category dropout, taken in expectation
            weight = self.training.category_dropout
            target = batch.target if batch.unknown_target is None else batch.unknown_target
            unknown = self._head_loss(out.unknown_prediction, out.unknown_own, target, parts, "unknown_category")
            loss = (1.0 - weight) * loss + weight * unknown
        if out.category_logits is not None:  # the unknown branch's vector must tell the categories apart
            categories = losses.category_loss(out.category_logits, batch.categories)
            loss = loss + self.training.category_prediction_weight * categories
            parts["category_prediction_loss"] = categories.detach()
        if out.counts is not None and batch.count_mask is not None:
            count = losses.hidden_count_loss(out.counts, batch.counts, batch.totals, batch.count_mask)
            loss = loss + self.training.count_loss_weight * count
            parts["count_loss"] = count.detach()
        if out.unifrac is not None and batch.distances is not None:
            unifrac = self._unifrac(out, batch, training=True)
            loss = loss + self.training.unifrac_penalty * unifrac
            parts["unifrac_loss"] = unifrac.detach()
        parts["loss"] = loss.detach()
        return loss, parts

    # -- passes over rows -----------------------------------------------------------------------
    def run_rows(self, model: nn.Module, rows: np.ndarray, unknown: bool = False) -> Predictions:
        """Predictions for dataset ``rows`` in original units (in ``rows`` order), the mean loss
        and the fusion's extras summarised for TensorBoard — computed in fp32, shared by every
        process (call it on all of them, under no_grad), each sample once.

        ``unknown`` (a model with an unknown-category head): also predict every row with its
        categories hidden, and weigh the two target losses as training does (category dropout)."""
        strategy, device = self.strategy, self.device
        rows = np.asarray(rows, dtype=np.int64)
        plan = plan_pass(rows, self.training.batch_size, strategy)
        table = AsvTable.encode(model, self.dataset, rows, max_asvs=self.config.data.max_asvs, strategy=strategy, bucket=self.device.type == "cuda")
        fusion = self.model.fusion
        outputs, hidden, positions, values = [], [], [], {}
        scalars: dict[str, torch.Tensor] = {}
        unifrac_total = torch.zeros((), device=device)
        for batch, real, start in zip(self.loader(plan.keys), plan.real, plan.starts, strict=True):
            batch = table.attach(batch.to(device))
            out = model(attrs.evolve(batch, unknown_branch=True) if unknown else batch)
            extras = out.extras if fusion is not None else {}
            summary = fusion.summarize(extras, self.column_names) if extras else {}
            for key in summary:  # every call names them, fillers too: each process reduces the same
                scalars.setdefault(key, torch.zeros(2, device=device))
            for key in extras:
                values.setdefault(key, [])
            if not real:
                continue
            outputs.append(out.prediction.float())
            if unknown:
                hidden.append(out.unknown_prediction.float())
            positions.append(torch.arange(start, start + batch.size, device=device))
            for key, value in summary.items():
                scalars[key] += torch.tensor([value, 1.0], device=device)
            for key, value in extras.items():
                values[key].append(value.detach().float().flatten())
            if out.unifrac is not None and batch.distances is not None:
                unifrac_total += self._unifrac(out, batch, training=False) * batch.size
        raw = in_order(strategy, positions, outputs, self._out_dim())
        target = torch.as_tensor(self.model_target[rows], device=device)
        loss = self._target_loss(raw, target)
        unknown_raw = None
        if unknown:
            unknown_raw = in_order(strategy, positions, hidden, self._out_dim())
            weight = self.training.category_dropout
            if self.hidden_target is not None:
                target = torch.as_tensor(self.hidden_target[rows], device=device)
            loss = (1.0 - weight) * loss + weight * self._target_loss(unknown_raw, target)
            unknown_raw = unknown_raw.cpu().numpy()
        if self.distances is not None:
            loss = loss + self.training.unifrac_penalty * strategy.all_reduce(unifrac_total) / max(len(rows), 1)
        sums = {key: strategy.all_reduce(total) for key, total in sorted(scalars.items())}
        trace = FusionTrace(
            scalars={key: float(total[0] / total[1]) for key, total in sums.items() if total[1] > 0},
            values={key: self._gathered(parts) for key, parts in sorted(values.items())},
        )
        raw_np = raw.cpu().numpy()
        return Predictions(
            rows=rows,
            predicted=self.encoding.decode(raw_np, rows),
            probabilities=self.encoding.probabilities(raw_np),
            loss=float(loss),
            trace=trace,
            unknown_raw=unknown_raw,
        )

    def _target_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not len(target):
            return torch.zeros((), device=raw.device)
        return losses.target_loss(raw, target, self.encoding.classifier, self.training.target_loss)

    def _out_dim(self) -> int:
        return len(self.encoding.classes) if self.encoding.classes else 1

    def _gathered(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Flattened extras of every process's batches, on the CPU (for histograms)."""
        local = torch.cat(parts) if parts else torch.zeros(0, device=self.device)
        return gather_rows(self.strategy, local).cpu()

    def frame(self, result: Predictions) -> pd.DataFrame:
        """``sample_id``, ``actual``, ``predicted`` (and one probability column per class)."""
        return predictions_frame(
            self.dataset.sample_ids[result.rows],
            self.dataset.target[result.rows],
            result.predicted,
            result.probabilities,
            self.encoding.classes,
        )

    def unknown_frame(self, result: Predictions) -> pd.DataFrame:
        """Like ``frame``, for the same rows predicted with every category hidden."""
        raw, rows = result.unknown_raw, result.rows
        return predictions_frame(
            self.dataset.sample_ids[rows],
            self.dataset.target[rows],
            self.encoding.hidden().decode(raw, rows),
            self.encoding.probabilities(raw),
            self.encoding.classes,
        )

    @property
    def scores_unknown(self) -> bool:
        """Whether validation also scores the unknown-category head: then the best epoch is
        chosen on the mix training optimises, not on the known-category head alone (which can
        peak epochs before the unknown head has learnt anything)."""
        return self.model.unknown_head is not None

    def metrics_of(self, frame: pd.DataFrame) -> dict[str, float]:
        actual, predicted = frame["actual"].to_numpy(), frame["predicted"].to_numpy()
        if not self.encoding.classifier:
            return compute_metrics(actual, predicted, False)
        found = read_probabilities(frame)
        return compute_metrics(actual, predicted, True, *(found or (None, None)))

    @property
    def best_metric(self) -> str:
        """The validation metric that picks the best epoch (``--best-metric``)."""
        chosen = self.training.best_metric or ("f1" if self.encoding.classifier else "mae")
        allowed = ("loss", "accuracy", "f1", "auc") if self.encoding.classifier else ("loss", "mae", "rmse", "r2")
        if chosen not in allowed:
            task = "classification" if self.encoding.classifier else "regression"
            raise ConfigError(f"--best-metric {chosen} does not apply to {task}; choose one of {', '.join(allowed)}.")
        return chosen

    def validate(self, model: nn.Module) -> Validation:
        """The best metric on the validation samples. With an unknown-category head it is the
        category-dropout mix of both heads' values — ``(1 - p)·known + p·unknown`` — and the
        loss is the same mix of the two target losses, as in training."""
        result = self.run_rows(model, self.split.val, unknown=self.scores_unknown)
        if not self.encoding.classifier and not np.isfinite(result.predicted.astype(float)).all():
            raise TrainingError("Validation predictions are not finite (diverged); try a lower --lr.")
        frame = self.frame(result)
        metrics = self.metrics_of(frame)
        key = self.best_metric
        value = result.loss if key == "loss" else metrics.get(key, float("nan"))
        logged = {f"val/{k}": float(v) for k, v in metrics.items() if k != "n"}
        summary = format_metrics(metrics)
        if result.unknown_raw is not None:
            hidden = self.metrics_of(self.unknown_frame(result))
            logged.update({f"val/unknown_{k}": float(v) for k, v in hidden.items() if k != "n"})
            shown = key if key != "loss" else ("f1" if self.encoding.classifier else "mae")
            summary += f" · categories hidden: {format_metrics({shown: hidden[shown]})}"
            if key != "loss":
                weight = self.training.category_dropout
                value = (1.0 - weight) * value + weight * hidden.get(key, float("nan"))
        return Validation(
            score=-value if key in HIGHER_IS_BETTER else value,
            loss=result.loss,
            metrics=logged,
            summary=summary,
            payload=(frame, result.trace),
        )

    # -- files ----------------------------------------------------------------------------------
    def _plot_keywords(self, frame: pd.DataFrame) -> dict[str, Any]:
        """Axis labels from the target, points coloured by the first categorical column."""
        keywords: dict[str, Any] = {"variable": self.column, "units": self.config.data.target_units}
        if self.column_names:
            group = self.column_names[0]
            keywords.update(groups=self.dataset.column(group)[self.dataset.rows_of(frame["sample_id"])], group_name=group)
        return keywords

    def log_validation(self, writer: RunWriter, validation: Validation, epoch: int, improved: bool) -> None:
        _, trace = validation.payload
        writer.log_scalars({f"fusion/{k}": v for k, v in trace.scalars.items()}, epoch)
        for key, values in trace.values.items():
            writer.log_histogram(f"fusion/{key}", values, epoch)
        if improved and not self.encoding.classifier:
            frame, _ = validation.payload
            title = f"{self.column} — validation, epoch {epoch}"
            figure = predicted_vs_actual_figure(frame["actual"], frame["predicted"], title, **self._plot_keywords(frame))
            writer.log_figure("val/predicted_vs_actual", figure, epoch)

    def _write_predictions(self, writer: RunWriter, name: str, frame: pd.DataFrame, epoch: int, title: str, plot: bool = True) -> None:
        writer.write_table(f"{name}_predictions.tsv", frame.assign(epoch=epoch))
        if not plot:
            return
        prefix = "" if name == "val" else f"{name}_"
        plots = writer.path / "plots"
        if self.encoding.classifier:
            written = save_classification_plots(
                frame, plots / f"{prefix}confusion_matrix.png", plots / f"{prefix}roc.png", title, variable=self.column
            )
            for path in written:
                if path is not None:
                    writer.record(path)
            return
        path = plots / f"{prefix}predicted_vs_actual.png"
        writer.record(save_predicted_vs_actual(frame["actual"], frame["predicted"], path, title, **self._plot_keywords(frame)))

    def on_best(self, writer: RunWriter, validation: Validation, epoch: int) -> None:
        frame, _ = validation.payload
        self._write_predictions(writer, "val", frame, epoch, f"{self.column} — validation, epoch {epoch}")

    def finish(self, writer: RunWriter | None, model: nn.Module, result: LoopResult) -> dict[str, Any]:
        """From the best model: ``val_predictions.tsv`` (always, saying which epoch it holds),
        ``test_predictions.tsv`` when a test set is held out, and the metrics of every side."""
        epoch = result.best_epoch
        classifier = self.encoding.classifier
        hidden = self.scores_unknown
        with torch.no_grad():
            val_result = self.run_rows(model, self.split.val, unknown=hidden)
            val = self.frame(val_result)
            train = self.frame(self.run_rows(model, self.split.train))
            test_result = self.run_rows(model, self.split.test, unknown=hidden) if len(self.split.test) else None
            test = self.frame(test_result) if test_result is not None else None
        label = "loss" if self.best_metric == "loss" else METRIC_LABELS[self.best_metric]
        if hidden:
            weight = self.training.category_dropout
            label += f" ({1.0 - weight:g}·categories given + {weight:g}·categories hidden)"
        metrics: dict[str, Any] = {
            "best_epoch": epoch,
            "best_metric": f"val {label}",
            "epochs_run": result.epochs_run,
            "n_train": len(self.split.train),
            "n_val": len(self.split.val),
            "val": self.metrics_of(val),
            "train": self.metrics_of(train),
            "target_transform": None if classifier else self.training.target_transform,
            "history": result.history,
        }
        self.final["val"] = val
        if hidden:  # what a sample of an unseen study, or one predicted without --metadata, gets
            metrics["val_categories_hidden"] = self.metrics_of(self.unknown_frame(val_result))
            if test_result is not None:
                metrics["test_categories_hidden"] = self.metrics_of(self.unknown_frame(test_result))
        if classifier:
            metrics["val_per_class"] = classification_report(val["actual"], val["predicted"], self.encoding.classes)
        if writer is not None:
            # the plot of this epoch was drawn when it improved
            self._write_predictions(writer, "val", val, epoch, "", plot=False)
            log.info("val_predictions.tsv holds the model of epoch %d (the best by %s).", epoch, metrics["best_metric"])
            curves = writer.path / "plots" / "training_curves.png"
            units = None if classifier else self.config.data.target_units
            shown = self.best_metric if self.best_metric != "loss" else ("f1" if classifier else "mae")
            writer.record(save_training_curves(result.history, curves, shown, best_epoch=epoch, units=units))
        if test is not None:
            self.final["test"] = test
            metrics["n_test"] = len(self.split.test)
            metrics["test"] = self.metrics_of(test)
            if classifier:
                metrics["test_per_class"] = classification_report(test["actual"], test["predicted"], self.encoding.classes)
            if writer is not None:
                self._write_predictions(writer, "test", test, epoch, f"{self.column} — test set, model of epoch {epoch}")
        return metrics
