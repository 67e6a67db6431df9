"""``fsdp``: fully sharded data parallel (FSDP2, ``torch.distributed.fsdp.fully_shard``) under
torchrun.

Each process keeps only its shard of every weight, gradient and optimizer moment; a layer's
weights are gathered just before it runs and dropped after, and gradients are reduce-scattered
back to the shards. Every transformer block is a unit of its own, then the ASV encoder's readout
and the rest of the ASV encoder (whose ``patches`` method is registered as a forward, since the
model calls it rather than ``forward``; an evaluation pass calls both to encode each unique ASV
once), then the whole model.

Why FSDP2 rather than FSDP1 (``FullyShardedDataParallel``): FSDP2 shards each parameter on its
own as a ``DTensor`` in place, instead of flattening a unit's parameters into one buffer. The
module keeps its class, its parameter names and its attributes (``model.asv_encoder`` still works),
frozen parameters need no flag (here they are left out of sharding altogether, replicated — what
``--freeze-base`` caches stays local), optimizer state is per parameter, and the state-dict API
(``torch.distributed.checkpoint.state_dict``) gives the same plain, full state dict a one-device
model has. FSDP1's flat parameters need ``use_orig_params`` for most of that, and it is the older,
no longer developed, implementation.

Checkpoints: ``last.pt`` and ``best.pt`` hold the full weights and optimizer state gathered onto
the global-zero process (every process takes part; calling ``state_dict()`` on one alone would
hang), so ``aam predict`` loads them on one device and a run resumes from them.
``--fsdp-sharded-checkpoint`` also writes each process's shard with ``torch.distributed.checkpoint``
into ``checkpoints/sharded/`` beside ``last.pt`` (readable with ``torch.distributed.checkpoint.load``
by any number of processes; it needs a filesystem every node sees).
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from aam_core import hookimpl
from aam_core.model.layers import TransformerBlock
from aam_core.specs import StrategySpec
from aam_plugins.parallel.torchrun import ProcessGroupStrategy


@attrs.frozen
class FSDPOptions:
    """Options of the ``fsdp`` strategy."""

    #: Also save each process's shard (torch.distributed.checkpoint) in checkpoints/sharded/.
    fsdp_sharded_checkpoint: bool = False


def _full_options(**extra: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


class FSDPStrategy(ProcessGroupStrategy):
    """FSDP2 over the torchrun process group (NCCL on CUDA, gloo on CPU)."""

    name = "fsdp"
    shards_parameters = True

    def __init__(self, device: str | None = None, options: FSDPOptions | None = None):
        super().__init__(device)
        self.options = options or FSDPOptions()

    def setup_module(self, module: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        module = module.to(self.root_device)
        mesh = init_device_mesh(self.root_device.type, (self.world_size,))
        frozen = {p for p in module.parameters() if not p.requires_grad} or None
        encoder = getattr(module, "asv_encoder", None)
        units = [m for m in module.modules() if isinstance(m, TransformerBlock)]
        units += [encoder.readout, encoder] if encoder is not None else []
        for unit in units:
            if any(p.requires_grad for p in unit.parameters()):
                fully_shard(unit, mesh=mesh, ignored_params=frozen)
        if encoder is not None:
            register_fsdp_forward_method(encoder, "patches")  # a no-op when it was left whole
        fully_shard(module, mesh=mesh, ignored_params=frozen)
        return module

    def no_backward_sync(self, module: nn.Module, skip: bool) -> AbstractContextManager:
        return _gradient_sync(module, not skip)

    def clip_gradients(self, module: nn.Module, max_norm: float) -> torch.Tensor:
        norm = nn.utils.clip_grad_norm_(module.parameters(), max_norm)  # a DTensor over the shards
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def module_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(module, options=_full_options(cpu_offload=True))

    def load_module_state_dict(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(module, dict(state), options=_full_options())  # it replaces entries

    def optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(module, optimizer, options=_full_options(cpu_offload=True))

    def load_optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        own = {  # it replaces entries in place: leave the caller's dicts as they were
            **state,
            "state": {name: dict(values) for name, values in state["state"].items()},
            "param_groups": [dict(group) for group in state["param_groups"]],
        }
        set_optimizer_state_dict(module, optimizer, own, options=_full_options())

    def save_sharded_state(self, module: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> bool:
        """With ``--fsdp-sharded-checkpoint``: ``{"model", "optimizer"}`` as each process holds
        them, written by every process into ``directory`` (emptied first)."""
        if not self.options.fsdp_sharded_checkpoint:
            return False
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        if self.is_global_zero:
            shutil.rmtree(directory, ignore_errors=True)
        self.barrier()
        model_state, optimizer_state = get_state_dict(module, optimizer)
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=directory)
        self.barrier()
        return True


@contextmanager
def _gradient_sync(module: nn.Module, enabled: bool):
    module.set_requires_gradient_sync(enabled)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


@hookimpl
def aam_parallel_strategies():
    """Fully sharded data parallel over processes started by torchrun."""
    return [
        StrategySpec(
            name="fsdp",
            factory=FSDPStrategy,
            description="FSDP2 (fully_shard): weights, gradients and optimizer state sharded over torchrun processes.",
            options=FSDPOptions,
        )
    ]
