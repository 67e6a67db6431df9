"""What each plugin family implements.

Plugins subclass these; the core depends only on them, never on a concrete plugin.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

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
    """Places the model, shards the data, reduces metrics and decides which rank writes."""

    @property
    @abc.abstractmethod
    def root_device(self) -> torch.device:
        """Device this process computes on."""

    @property
    def is_global_zero(self) -> bool:
        """True on the one process that writes files and logs."""
        return True

    @property
    def world_size(self) -> int:
        return 1

    @abc.abstractmethod
    def setup_module(self, module: nn.Module) -> nn.Module:
        """Move/wrap the module for this strategy; return what to call in the loop."""

    def unwrap(self, module: nn.Module) -> nn.Module:
        """The plain model inside whatever ``setup_module`` returned (for saving)."""
        return module

    def shard(self, indices: Sequence[int]) -> list[int]:
        """This process's share of an epoch's sample indices."""
        return list(indices)

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce a tensor over processes (``sum`` or ``mean``)."""
        del op  # one process: nothing to reduce
        return tensor

    def barrier(self) -> None:
        """Wait for every process."""
        return None

    def teardown(self) -> None:
        """Release process groups and devices."""
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
