"""``dp``: ``torch.nn.DataParallel`` over the visible CUDA GPUs, in one process.

Each step splits the batch's samples over the GPUs; every part carries only the unique ASVs its
samples use (re-indexed), so the ASV encoder's work is split too (an ASV shared by two parts is
encoded on both). The outputs come back to the first GPU: per-sample tensors are concatenated,
per-ASV nucleotide logits put back in the batch's ASV order. One process drives every GPU and
re-copies the model each step, so ``ddp`` under torchrun is faster on the same GPUs; ``dp``
needs no launcher. Without CUDA it stops and says what to use instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aam_core import hookimpl
from aam_core.data.batching import Batch
from aam_core.errors import ConfigError
from aam_core.interfaces import ParallelStrategy
from aam_core.model.aam import ModelOutput
from aam_core.specs import StrategySpec


def split_batch(batch: Batch, parts: int) -> list[tuple[Batch, torch.Tensor]]:
    """``batch`` cut into up to ``parts`` consecutive groups of samples, each with the rows of
    ``asv_tokens`` it kept."""
    bounds = np.linspace(0, batch.size, min(parts, batch.size) + 1).round().astype(int)
    return [batch.select(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def merge_outputs(outputs: list[ModelOutput], used: list[torch.Tensor], n_unique: int, device: torch.device) -> ModelOutput:
    """The outputs of the parts as one output of the whole batch, on ``device``."""

    def joined(values: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if values[0] is None else torch.cat([v.to(device) for v in values])

    nucleotides = None
    if outputs[0].nucleotides is not None:  # per ASV: back to the batch's ASV rows
        first = outputs[0].nucleotides
        nucleotides = first.new_zeros((n_unique, *first.shape[1:]), device=device)
        for out, rows in zip(outputs, used, strict=True):
            nucleotides = nucleotides.index_copy(0, rows.to(device), out.nucleotides.to(device))
    logits = None
    if outputs[0].category_logits is not None:  # per categorical column
        logits = [joined(column) for column in zip(*(o.category_logits for o in outputs), strict=True)]
    return ModelOutput(
        prediction=joined([o.prediction for o in outputs]),
        embedding=joined([o.embedding for o in outputs]),
        counts=joined([o.counts for o in outputs]),
        extras={key: joined([o.extras[key] for o in outputs]) for key in outputs[0].extras},
        unifrac=joined([o.unifrac for o in outputs]),
        nucleotides=nucleotides,
        unknown_prediction=joined([o.unknown_prediction for o in outputs]),
        category_logits=logits,
        own_prediction=joined([o.own_prediction for o in outputs]),
        unknown_own=joined([o.unknown_own for o in outputs]),
    )


class _BatchDataParallel(nn.DataParallel):
    """DataParallel that knows a :class:`Batch`: samples split with their own ASVs."""

    def scatter(self, inputs, kwargs, device_ids):  # noqa: ARG002 - DataParallel's signature
        (batch,) = inputs
        if len(device_ids) == 1:  # DataParallel then calls the module itself and gathers nothing
            return [(batch.to(torch.device("cuda", device_ids[0])),)], [{}]
        parts = split_batch(batch, len(device_ids))
        self._used = [used for _, used in parts]
        self._n_unique = batch.asv_tokens.shape[0]
        moved = [(part.to(torch.device("cuda", device_ids[i])),) for i, (part, _) in enumerate(parts)]
        return moved, [{} for _ in moved]

    def gather(self, outputs, output_device):
        return merge_outputs(list(outputs), self._used, self._n_unique, torch.device("cuda", output_device))


class DataParallelStrategy(ParallelStrategy):
    """One process, every visible GPU."""

    def __init__(self, device: str | None = None, options: None = None):
        del options  # dp has none
        if not torch.cuda.is_available():
            raise ConfigError(
                "--parallel dp splits each batch over CUDA GPUs and this machine has none; use "
                "--parallel single (or ddp under torchrun for several CPU processes)."
            )
        if device is not None and torch.device(device) != torch.device("cuda"):
            raise ConfigError(
                f"--parallel dp uses every visible GPU; --device {device} names one device: drop it, "
                "choose GPUs with CUDA_VISIBLE_DEVICES, or use --parallel single for one device."
            )
        self._ids = list(range(torch.cuda.device_count()))
        self._device = torch.device("cuda", self._ids[0])

    @property
    def root_device(self) -> torch.device:
        return self._device

    def setup_module(self, module: nn.Module) -> nn.Module:
        return _BatchDataParallel(module.to(self._device), device_ids=self._ids)

    def unwrap(self, module: nn.Module) -> nn.Module:
        return module.module if isinstance(module, nn.DataParallel) else module


@hookimpl
def aam_parallel_strategies():
    """DataParallel over the visible GPUs."""
    return [
        StrategySpec(
            name="dp",
            factory=DataParallelStrategy,
            description="torch.nn.DataParallel: one process splits each batch over every visible GPU.",
        )
    ]
