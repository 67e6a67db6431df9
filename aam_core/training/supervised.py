"""The fine-tuning task: predict a metadata column (regression or classification).

Targets enter the model in transformed units; everything leaving ``validate`` — predictions,
metrics, summaries — is inverse-transformed to original units first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from aam_core.data.batching import Batch, iter_batches
from aam_core.data.dataset import Dataset
from aam_core.errors import TrainingError
from aam_core.interfaces import TargetTransform
from aam_core.model.aam import AAMModel, ModelOutput
from aam_core.training.loop import Validation
from aam_core.training.metrics import compute_metrics, format_metrics

TARGET_LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}


@attrs.define
class TargetEncoding:
    """How the target column becomes model units and back."""

    classes: list[str] | None  # classification labels (index = class id), None for regression
    transform: TargetTransform | None  # regression only
    transform_categories: np.ndarray | None  # per-row labels for per-category transforms

    def encode(self, dataset_target: np.ndarray) -> np.ndarray:
        if self.classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            return np.array([index.get(v, -1) for v in dataset_target], dtype=np.int64)
        return self.transform.transform(dataset_target, self.transform_categories).astype(np.float32)

    def decode(self, output: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Model output for ``rows`` → original units (or labels)."""
        if self.classes is not None:
            return np.asarray(self.classes, dtype=object)[output.argmax(axis=1)]
        cats = None if self.transform_categories is None else self.transform_categories[rows]
        return self.transform.inverse_transform(output[:, 0].astype(np.float64), cats)


@attrs.define
class FusionTrace:
    """Fusion extras gathered over a validation pass, for TensorBoard."""

    scalars: dict[str, float]
    values: dict[str, torch.Tensor]


def forward_batches(
    model: nn.Module, batches: Iterator[Batch], device: torch.device, autocast: Callable[[], Any]
) -> Iterator[tuple[Batch, ModelOutput]]:
    """Each batch moved to ``device`` with the model's output on it (no gradients kept)."""
    for batch in batches:
        batch = batch.to(device)
        with autocast():
            out = model(batch)
        yield batch, out


class SupervisedTask:
    """Batches, loss and validation for one train/validation split."""

    def __init__(
        self,
        *,
        model: AAMModel,
        dataset: Dataset,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        codes: np.ndarray,
        encoding: TargetEncoding,
        batch_size: int,
        max_asvs: int,
        seed: int,
        target_loss: str,
        count_loss_weight: float,
        column_names: Sequence[str],
        bucket: bool,
        device: torch.device,
        shard: Callable[[Sequence[int]], list[int]] = list,
    ):
        self.model = model
        self.dataset = dataset
        self.train_rows, self.val_rows = train_rows, val_rows
        self.codes = codes
        self.encoding = encoding
        self.model_target = encoding.encode(dataset.target)
        self.batch_size, self.max_asvs, self.seed = batch_size, max_asvs, seed
        self.target_loss = target_loss
        self.count_loss_weight = count_loss_weight if model.count_head is not None else 0.0
        self.column_names = list(column_names)
        self.bucket, self.device = bucket, device
        self.shard = shard  # this process's share of the training rows (parallel strategies)

    def _batches(self, rows: np.ndarray, shuffle: bool, epoch: int = 0) -> Iterator[Batch]:
        return iter_batches(
            self.dataset,
            rows,
            self.batch_size,
            max_asvs=self.max_asvs,
            categories=self.codes,
            target=self.model_target,
            shuffle=shuffle,
            generator=np.random.default_rng((self.seed, epoch)),
            bucket=self.bucket,
        )

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        """The same shuffle on every process (seeded by epoch), then this process's shard."""
        order = np.random.default_rng((self.seed, epoch)).permutation(self.train_rows)
        return self._batches(np.asarray(self.shard(order), dtype=np.int64), shuffle=False)

    def n_train_batches(self) -> int:
        return -(-len(self.shard(self.train_rows)) // self.batch_size)

    def _losses(self, out: ModelOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if self.encoding.classes is not None:
            target_loss = F.cross_entropy(out.prediction.float(), batch.target, ignore_index=-1)
        else:
            target_loss = TARGET_LOSSES[self.target_loss](out.prediction[:, 0].float(), batch.target.float())
        parts = {"target_loss": target_loss.item()}
        loss = target_loss
        if self.count_loss_weight and out.counts is not None:
            counts = batch.counts.float()
            total = counts.sum(-1, keepdim=True).clamp_min(1.0)
            truth = torch.log(counts.clamp_min(1.0) / total)
            err = (out.counts.float() - truth) ** 2
            count_loss = (err * batch.mask).sum() / batch.mask.sum().clamp_min(1)
            loss = loss + self.count_loss_weight * count_loss
            parts["count_loss"] = count_loss.item()
        parts["loss"] = loss.item()
        return loss, parts

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self._losses(model(batch), batch)

    def predict_rows(
        self, model: nn.Module, rows: np.ndarray, autocast: Callable[[], Any] = nullcontext
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows in batch order, predictions in original units)`` for dataset rows."""
        outputs, order = [], []
        for batch, out in forward_batches(model, self._batches(rows, False), self.device, autocast):
            outputs.append(out.prediction.float().cpu().numpy())
            order.append(batch.rows)
        order_all = np.concatenate(order)
        return order_all, self.encoding.decode(np.concatenate(outputs), order_all)

    def validate(self, model: nn.Module, autocast: Callable[[], Any]) -> Validation:
        losses, outputs, rows = [], [], []
        scalars: dict[str, list[float]] = {}
        values: dict[str, list[torch.Tensor]] = {}
        fusion = self.model.fusion
        for batch, out in forward_batches(model, self._batches(self.val_rows, False), self.device, autocast):
            loss, _ = self._losses(out, batch)
            losses.append(loss.item() * batch.size)
            outputs.append(out.prediction.float().cpu().numpy())
            rows.append(batch.rows)
            if fusion is not None and out.extras:
                for key, value in fusion.summarize(out.extras, self.column_names).items():
                    scalars.setdefault(key, []).append(value)
                for key, value in out.extras.items():
                    values.setdefault(key, []).append(value.detach().float().flatten().cpu())
        rows_all = np.concatenate(rows)
        predicted = self.encoding.decode(np.concatenate(outputs), rows_all)
        if self.encoding.classes is None and not np.isfinite(predicted).all():
            raise TrainingError("Validation predictions are not finite (diverged); try a lower --lr.")
        actual = self.dataset.target[rows_all]
        classifier = self.encoding.classes is not None
        metrics = compute_metrics(actual, predicted, classifier)
        score = -metrics["accuracy"] if classifier else metrics["mae"]
        frame = pd.DataFrame(
            {"sample_id": self.dataset.sample_ids[rows_all], "actual": actual, "predicted": predicted}
        )
        trace = FusionTrace(
            scalars={k: float(np.mean(v)) for k, v in scalars.items()},
            values={k: torch.cat(v) for k, v in values.items()},
        )
        return Validation(
            score=score,
            loss=sum(losses) / max(len(rows_all), 1),
            metrics={f"val/{k}": float(v) for k, v in metrics.items() if k != "n"},
            summary=format_metrics(metrics),
            payload=(frame, trace),
        )
