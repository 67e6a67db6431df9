"""What each plugin family implements.

Plugins subclass these; the core depends only on them, never on a concrete plugin.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from aam_core.data.batching import ShardSampler

#: ``pool(h [B, S, D], mask [B, S] bool) -> [B, D]``: the model's attention pooling.
Pool = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FusionOutput(NamedTuple):
    """What a fusion returns: the pooled sample vector and inspectable tensors (gates, weights)."""

    pooled: torch.Tensor
    extras: dict[str, torch.Tensor]


class Fusion(nn.Module, abc.ABC):
    """Combines a sample's ASV representation with its categorical metadata tokens.

    ``forward`` receives the sample encoder's output ``asv [B, S, D]``, its mask ``[B, S]`` (True
    where an ASV is present), one token per categorical column ``cat [B, K, D]`` and the model's
    attention pooling. It returns ``FusionOutput(pooled [B, D], extras)``. Pooled fusions call
    ``pool(asv, mask)`` first and combine; position-wise fusions transform ``asv`` and then pool;
    a fusion may also replace pooling entirely (perceiver). Padding must not change the result.

    ``uses_pool = False`` tells the model not to build its attention pooling (a module that never
    gets a gradient breaks DistributedDataParallel). ``extras_axes`` names, for each extra, the
    axis of one sample's array (batch axis removed) that runs over the sample's ASV slots, or
    None when no axis does; ``aam predict`` trims those axes to each sample's own ASVs.
    """

    uses_pool: bool = True
    extras_axes: dict[str, int | None] = {}

    @abc.abstractmethod
    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        """Fuse and pool."""

    def summarize(self, extras: dict[str, torch.Tensor], columns: Sequence[str]) -> dict[str, float]:
        """Scalars for TensorBoard from one batch's extras; ``columns`` names the K tokens."""
        del columns  # the default summary does not split by column
        return {key: float(value.float().mean()) for key, value in extras.items()}


class TargetTransform(abc.ABC):
    """A reversible scaling of the regression target, fitted on the training split only.

    ``categories`` holds one label per row (strings) for transforms with ``uses_categories``.
    A ``None`` label means the row's category is hidden: the model predicts that row without it
    (the unknown-category branch, ``aam predict`` without metadata), so the transform must use
    statistics that need no category — those of a category it never saw — and not warn.
    Every number shown to a person goes through ``inverse_transform`` first.
    """

    #: True when the transform needs ``--normalize-by`` (per-category statistics).
    uses_categories: bool = False

    @abc.abstractmethod
    def fit(self, y: np.ndarray, categories: np.ndarray | None = None) -> TargetTransform:
        """Learn the statistics from training targets; return self."""

    @abc.abstractmethod
    def transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        """Original units → model units."""

    @abc.abstractmethod
    def inverse_transform(self, y: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
        """Model units → original units."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-compatible fitted state, stored in checkpoints."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class ParallelStrategy(abc.ABC):
    """Where a run computes and how its processes cooperate (shaped after Lightning Fabric's
    ``Strategy``). One process per device; a multi-process strategy runs under ``torchrun`` and
    learns its rank from the environment torchrun sets.

    The Trainer and the tasks call only these methods. Unless a method says otherwise, every
    process calls it, in the same order (a collective): a process that skips one hangs the others.

    - once: ``setup(module, make_optimizer)`` → what the loop calls and its optimizer (built from
      the set-up module's parameters: FSDP replaces them by shards); ``sampler(n, seed=...)`` → the
      epoch order, an equal share per process.
    - each step: forward and backward inside ``no_backward_sync(module, skip)`` (``skip`` on the
      micro-batches of gradient accumulation), ``clip_gradients(module, max_norm)`` before the
      optimizer step; ``all_gather`` (with gradient) for losses over pairs of samples.
    - decisions and metrics: ``all_reduce``, ``broadcast``, ``barrier``.
    - checkpoints: ``module_state_dict`` and ``optimizer_state_dict`` (full, on CPU, complete on
      the global-zero process, which alone writes), ``load_*`` to restore them, and
      ``save_sharded_state`` for per-process shards when a strategy keeps them (every process
      writes its own there).
    - at the end, also after an error: ``teardown()``.

    The defaults are those of one process.
    """

    #: True when ``setup`` replaces the module's parameters by per-process shards (FSDP): the set-up
    #: module then runs only inside the process group, and the run hands back a plain copy.
    shards_parameters: bool = False

    @property
    @abc.abstractmethod
    def root_device(self) -> torch.device:
        """Device this process computes on."""

    @property
    def world_size(self) -> int:
        """Processes taking part (1 for one process)."""
        return 1

    @property
    def global_rank(self) -> int:
        """This process's index among ``world_size`` (0 for one process)."""
        return 0

    @property
    def is_global_zero(self) -> bool:
        """True on the one process that writes files and logs."""
        return self.global_rank == 0

    # -- set-up ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup_module(self, module: nn.Module) -> nn.Module:
        """Move/wrap the module for this strategy; return what to call in the loop."""

    def setup(
        self, module: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Set up the module, then build its optimizer from the set-up module's parameters
        (``make_optimizer`` receives the plain module, with sharded parameters under FSDP)."""
        wrapped = self.setup_module(module)
        return wrapped, make_optimizer(self.unwrap(wrapped))

    def unwrap(self, module: nn.Module) -> nn.Module:
        """The model inside whatever ``setup_module`` returned (its attributes, its submodules)."""
        return module

    # -- a step ---------------------------------------------------------------------------------
    def no_backward_sync(self, module: nn.Module, skip: bool) -> AbstractContextManager:
        """Around forward and backward: with ``skip``, gradients stay local (accumulation)."""
        del module, skip  # one process: nothing to synchronise
        return nullcontext()

    def clip_gradients(self, module: nn.Module, max_norm: float) -> torch.Tensor:
        """Scale the gradients so their global norm is at most ``max_norm``; returns the norm."""
        return nn.utils.clip_grad_norm_(self.unwrap(module).parameters(), max_norm)

    # -- data -----------------------------------------------------------------------------------
    def sampler(self, n: int, *, seed: int) -> ShardSampler:
        """This process's share of ``n`` items per epoch (``set_epoch`` reshuffles): the same
        seeded order on every process, equal shares, so every process takes the same steps."""
        return ShardSampler(n, replicas=self.world_size, rank=self.global_rank, seed=seed)

    # -- collectives ----------------------------------------------------------------------------
    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """A reduced copy of ``tensor`` over processes (``sum``, ``mean`` or ``max``)."""
        del op  # one process: nothing to reduce
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``tensor`` stacked ``[world_size, *shape]`` (equal shapes), with a
        gradient that flows back to each process's own slice."""
        return tensor.unsqueeze(0)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Process ``src``'s ``obj`` (picklable) on every process."""
        del src  # one process: it is the source
        return obj

    def barrier(self) -> None:
        """Wait for every process."""
        return None

    # -- checkpoints ----------------------------------------------------------------------------
    def module_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The full weights on CPU, complete on the global-zero process (others may get {})."""
        return {k: v.detach().cpu() for k, v in self.unwrap(module).state_dict().items()}

    def load_module_state_dict(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load full weights (as ``module_state_dict`` returns them, given on every process)."""
        self.unwrap(module).load_state_dict(state)

    def optimizer_state_dict(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's full state, complete on the global-zero process."""
        del module  # the plain optimizer state describes the parameters by position
        return optimizer.state_dict()

    def load_optimizer_state_dict(
        self, module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
    ) -> None:
        """Restore what ``optimizer_state_dict`` returned (given on every process)."""
        del module  # see optimizer_state_dict
        optimizer.load_state_dict(state)

    def save_sharded_state(self, module: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> bool:
        """Every process writes its shard of the training state into ``directory`` (replacing
        what is there), when this strategy keeps shards besides the full checkpoint; True then
        (the same answer on every process), once every process has finished. Default: False."""
        del module, optimizer, directory  # one process: the full checkpoint is everything
        return False

    def teardown(self) -> None:
        """Release what this run holds (called once, also after an error; a process group may
        outlive it, for the next run in the same process)."""
        return None


class Baseline(abc.ABC):
    """A non-deep model trained on the samples × features matrix, for honest comparison.

    ``fit`` and ``predict`` are required. A classifier that can give class probabilities sets
    ``classes_`` in ``fit`` and overrides ``predict_proba``; a model that can rank its features
    overrides ``feature_importances``. Both default to None ("not available"), so a baseline
    without them still runs: its predictions file then has no probability columns.
    """

    #: Class labels (text) in the column order of ``predict_proba``; set by ``fit``.
    classes_: Sequence[str] | None = None

    @abc.abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray) -> Baseline:
        """Train on ``x [n_samples, n_features]`` and targets ``y``; return self."""

    @abc.abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """One prediction per row of ``x``."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        """Class probabilities ``[n_samples, len(classes_)]``, or None when not available."""
        del x  # the default model gives no probabilities
        return None

    def feature_importances(self) -> np.ndarray | None:
        """One non-negative weight per feature of the fitted model, or None when not available."""
        return None
