"""AAM — Attention All Microbes.

Sequence-aware deep learning on microbiome tables. The public API is re-exported here; the CLI
(``aam``) is a thin layer over these same functions.

Writing a plugin
----------------
A plugin is a module that implements one or more hooks from :mod:`aam_core.hookspecs` with
:data:`hookimpl` and returns spec records (:class:`FusionSpec`, :class:`TransformSpec`,
:class:`StrategySpec`, :class:`BaselineSpec`). Name the module in your ``pyproject.toml``::

    [project.entry-points.aam]
    my-fusion = "my_package.fusion"

After ``pip install``, ``aam plugins`` lists it and ``aam train --fusion <name>`` selects it.
"""

from aam_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
from aam_core.errors import AAMError, CheckpointError, ConfigError, DataError, PluginError
from aam_core.hookspecs import hookimpl
from aam_core.interfaces import (
    Baseline,
    Fusion,
    FusionOutput,
    ParallelStrategy,
    TargetTransform,
)
from aam_core.plugins import PluginInfo, PluginRegistry, get_plugin, list_plugins
from aam_core.specs import BaselineSpec, FusionSpec, StrategySpec, TransformSpec

__version__ = "0.1.0"

__all__ = [
    "AAMError",
    "Baseline",
    "BaselineSpec",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Fusion",
    "FusionOutput",
    "FusionSpec",
    "ModelConfig",
    "ParallelStrategy",
    "PluginError",
    "PluginInfo",
    "PluginRegistry",
    "RunConfig",
    "StrategySpec",
    "TargetTransform",
    "TrainConfig",
    "TransformSpec",
    "get_plugin",
    "hookimpl",
    "list_plugins",
    "load_config",
]
