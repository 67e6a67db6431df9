"""AAM — Attention All Microbes.

Sequence-aware deep learning on microbiome tables. The public API is re-exported here, loaded on
first use so that ``import aam_core`` and ``aam --help`` stay fast; the CLI (``aam``) is a thin
layer over these same functions.

Writing a plugin
----------------
A plugin is a module that implements one or more hooks from :mod:`aam_core.hookspecs` with
:data:`hookimpl` and returns spec records (:class:`FusionSpec`, :class:`TransformSpec`,
:class:`StrategySpec`, :class:`BaselineSpec`). Name the module in your ``pyproject.toml``::

    [project.entry-points.aam]
    my-fusion = "my_package.fusion"

After ``pip install``, ``aam plugins`` lists it and ``aam train --fusion <name>`` selects it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "aam_core.api",
    "predict": "aam_core.api",
    "pretrain": "aam_core.api",
    "load_model": "aam_core.api",
    "TrainResult": "aam_core.api",
    "LoadedModel": "aam_core.api",
    "run_baseline": "aam_core.baseline",
    "BaselineResult": "aam_core.baseline",
    "CVResult": "aam_core.cv",
    "evaluate": "aam_core.evaluation",
    "explain": "aam_core.attribution.api",
    "cross_validate": "aam_core.cv",
    "DataConfig": "aam_core.config",
    "ModelConfig": "aam_core.config",
    "TrainConfig": "aam_core.config",
    "RunConfig": "aam_core.config",
    "load_config": "aam_core.config",
    "AAMError": "aam_core.errors",
    "CheckpointError": "aam_core.errors",
    "ConfigError": "aam_core.errors",
    "DataError": "aam_core.errors",
    "PluginError": "aam_core.errors",
    "RunInterrupted": "aam_core.errors",
    "TrainingError": "aam_core.errors",
    "hookimpl": "aam_core.hookspecs",
    "Baseline": "aam_core.interfaces",
    "Fusion": "aam_core.interfaces",
    "FusionOutput": "aam_core.interfaces",
    "ParallelStrategy": "aam_core.interfaces",
    "TargetTransform": "aam_core.interfaces",
    "PluginInfo": "aam_core.plugins",
    "PluginRegistry": "aam_core.plugins",
    "get_plugin": "aam_core.plugins",
    "list_plugins": "aam_core.plugins",
    "BaselineSpec": "aam_core.specs",
    "FusionSpec": "aam_core.specs",
    "StrategySpec": "aam_core.specs",
    "TransformSpec": "aam_core.specs",
    "compute_unifrac": "aam_core.unifrac.api",
    "unifrac_matrix": "aam_core.unifrac.api",
    "BatchUniFrac": "aam_core.unifrac.batch",
    "read_distance_matrix": "aam_core.unifrac.matrix_io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aam_core' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
