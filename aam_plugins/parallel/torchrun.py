"""What ``ddp`` and ``fsdp`` share: one process per device, started by ``torchrun``, one process
group.

AAM has no launcher of its own. ``torchrun --standalone --nproc-per-node N`` starts the processes
on one node (``--nnodes``, ``--rdzv-backend c10d`` and ``--rdzv-endpoint`` across nodes) and sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; a strategy started without
them says which command to run. The backend is NCCL on CUDA and gloo on CPU (``--device cpu``),
which is how the tests run two processes on a laptop.

The process group lives as long as the process (destroyed at exit): a script that trains
several times in one torchrun job reuses it, since PyTorch cannot reliably make the default
group a second time on the same rendezvous. This module is no plugin itself (it has no entry
point); the two strategies subclass :class:`ProcessGroupStrategy`.
"""

from __future__ import annotations

import atexit
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from aam_core.devices import pick_device
from aam_core.errors import ConfigError
from aam_core.interfaces import ParallelStrategy

#: What torchrun (or any launcher that uses ``env://``) sets for every process.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

_OPS = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}


def torchrun_command() -> str:
    """This very command as torchrun would run it on one node (one process per GPU)."""
    processes = torch.cuda.device_count() or 2
    argv = list(sys.argv)
    script = Path(argv[0])
    if script.name == "aam" or script.parts[-3:] == ("aam_core", "cli", "__main__.py"):
        launched = ["-m", "aam_core.cli", *argv[1:]]
    else:
        launched = argv
    return f"torchrun --standalone --nproc-per-node {processes} {shlex.join(launched)}"


class ProcessGroupStrategy(ParallelStrategy):
    """One process of a torchrun job: its device, its rank and the collectives over the group."""

    name = "ddp"

    def __init__(self, device: str | None):
        if any(variable not in os.environ for variable in LAUNCH_VARIABLES):
            raise ConfigError(
                f"--parallel {self.name} runs one process per device under torchrun; start it with: "
                f"{torchrun_command()}"
            )
        self._rank = int(os.environ["RANK"])
        self._world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ["LOCAL_RANK"])
        self._device = self._pick(device, local)
        cuda = self._device.type == "cuda"
        if cuda:
            torch.cuda.set_device(self._device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo", device_id=self._device if cuda else None)
            atexit.register(_destroy_group)
        elif dist.get_world_size() != self._world:
            raise ConfigError("A process group of another size is already running in this process.")

    def _pick(self, device: str | None, local: int) -> torch.device:
        chosen = pick_device(device)
        if chosen.type != "cuda":
            return chosen
        if device is not None and chosen.index is not None:
            raise ConfigError(
                f"--device {device} with --parallel {self.name}: each process uses the GPU of its "
                "LOCAL_RANK; choose the GPUs with CUDA_VISIBLE_DEVICES and pass --device cuda."
            )
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"Process {local} of this node has no GPU of its own ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU (--nproc-per-node)."
            )
        return torch.device("cuda", local)

    @property
    def root_device(self) -> torch.device:
        return self._device

    @property
    def world_size(self) -> int:
        return self._world

    @property
    def global_rank(self) -> int:
        return self._rank

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        out = tensor.detach().clone()
        dist.all_reduce(out, op=_OPS[op])
        return out / self._world if op == "mean" else out

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Through ``torch.distributed.nn``: its backward sums every process's gradient for a
        slice and returns it to the slice's owner (a reduce-scatter), so a loss computed from the
        gathered tensor on every process trains each process's own inputs with the gradient of
        all the pairs they are in — not only of the pairs this process computed."""
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated in favour of a private module; still exact
            warnings.simplefilter("ignore", FutureWarning)
            return torch.stack(all_gather(tensor.contiguous()))

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self._device.type == "cuda":
            dist.barrier(device_ids=[self._device.index])
        else:
            dist.barrier()


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
