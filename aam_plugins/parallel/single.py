"""``single``: one process on one device — CUDA when available, else CPU; ``--device`` forces."""

from __future__ import annotations

import torch
from torch import nn

from aam_core import hookimpl
from aam_core.devices import pick_device
from aam_core.interfaces import ParallelStrategy
from aam_core.specs import StrategySpec


class SingleDeviceStrategy(ParallelStrategy):
    """Everything on one device in this process."""

    def __init__(self, device: str | None = None, options: None = None):
        del options  # the single strategy has none
        self._device = pick_device(device)

    @property
    def root_device(self) -> torch.device:
        return self._device

    def setup_module(self, module: nn.Module) -> nn.Module:
        return module.to(self._device)


@hookimpl
def aam_parallel_strategies():
    """The one-device strategy."""
    return [
        StrategySpec(
            name="single",
            factory=SingleDeviceStrategy,
            description="One process on one device: CUDA if available, else CPU (--device forces).",
        )
    ]
