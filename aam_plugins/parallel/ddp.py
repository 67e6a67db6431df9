"""``ddp``: ``DistributedDataParallel``, one process per device under torchrun.

Every process holds the whole model and its shard of each epoch (an equal share, so all take the
same number of steps); gradients are averaged over processes during backward. Gradient
accumulation skips that exchange on all but the last micro-batch (``no_sync``). DDP waits for a
gradient of every trainable parameter: the model builds no head whose loss is off and freezes
what no loss reaches, rather than asking DDP to search the graph each step
(``find_unused_parameters``). Checkpoints need no gathering — every process holds the same
weights and optimizer state; the global-zero process writes them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from aam_core import hookimpl
from aam_core.specs import StrategySpec
from aam_plugins.parallel.torchrun import ProcessGroupStrategy


class DDPStrategy(ProcessGroupStrategy):
    """DistributedDataParallel over the torchrun process group (NCCL on CUDA, gloo on CPU)."""

    name = "ddp"

    def __init__(self, device: str | None = None, options: None = None):
        del options  # ddp has none
        super().__init__(device)

    def setup_module(self, module: nn.Module) -> nn.Module:
        module = module.to(self.root_device)
        ids = [self.root_device.index] if self.root_device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True)

    def unwrap(self, module: nn.Module) -> nn.Module:
        return module.module if isinstance(module, DistributedDataParallel) else module

    def no_backward_sync(self, module: nn.Module, skip: bool) -> AbstractContextManager:
        return module.no_sync() if skip and isinstance(module, DistributedDataParallel) else nullcontext()


@hookimpl
def aam_parallel_strategies():
    """Data parallel over processes started by torchrun."""
    return [
        StrategySpec(
            name="ddp",
            factory=DDPStrategy,
            description="DistributedDataParallel, one process per GPU (or CPU process) under torchrun.",
        )
    ]
