"""Flat keyword options (what a person types) → a :class:`RunConfig`.

``aam train --embedding-dim 64 --fusion gmu --cross-attn-heads 4`` and
``aam_core.train(embedding_dim=64, fusion="gmu", cross_attn_heads=4)`` both land here, so the CLI
and the Python API share one path. Field names are unique across the config sections; anything
else must be an option of an installed fusion plugin.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import attrs

from aam_core.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    read_config_file,
    split_columns,
    structure,
    unstructure,
)
from aam_core.errors import ConfigError
from aam_core.plugins import list_plugins

SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainConfig}
FIELD_SECTION = {f.name: section for section, cls in SECTIONS.items() for f in attrs.fields(cls)}

LEGACY = ("normalize_targets", "normalize_targets_by", "log_transform_targets")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def fusion_option_names() -> set[str]:
    """Option names declared by every installed fusion plugin."""
    names = set()
    for info in list_plugins("fusion"):
        if info.spec.options is not None:
            names.update(f.name for f in attrs.fields(info.spec.options))
    return names


def translate_legacy(options: dict[str, Any]) -> dict[str, Any]:
    """Map the old target flags onto ``--target-transform`` / ``--normalize-by``, warning once
    each; an old flag together with a new one is an error."""
    options = dict(options)
    if options.get("log_transform_targets") is False:  # a plain flag: False means "not given"
        options.pop("log_transform_targets")
    old = {k: options.pop(k) for k in LEGACY if options.get(k) is not None}
    if not old:
        return options
    if "target_transform" in options or "normalize_by" in options:
        given = [_flag(k) for k in old]
        raise ConfigError(
            f"{', '.join(given)} is deprecated and conflicts with --target-transform/--normalize-by; "
            "use only the new flags."
        )
    by = old.get("normalize_targets_by")
    if by:
        columns = split_columns(by)
        if len(columns) != 1:
            raise ConfigError("--normalize-targets-by takes exactly one column with zscore-category.")
        if old.get("log_transform_targets") or old.get("normalize_targets") is False:
            other = "--log-transform-targets" if old.get("log_transform_targets") else "--no-normalize-targets"
            raise ConfigError(f"{other} cannot be combined with --normalize-targets-by.")
        options.update(target_transform="zscore-category", normalize_by=columns[0])
        replacement = f"--target-transform zscore-category --normalize-by {columns[0]}"
        warnings.warn(f"--normalize-targets-by is deprecated; use {replacement}.", FutureWarning, stacklevel=3)
        return options
    normalize = old.get("normalize_targets", True)
    log = bool(old.get("log_transform_targets"))
    if log and not normalize:
        raise ConfigError(
            "--log-transform-targets with --no-normalize-targets has no replacement; "
            "use --target-transform log-zscore."
        )
    name = ("log-minmax" if log else "minmax") if normalize else "none"
    used = " and ".join(
        "--no-normalize-targets" if k == "normalize_targets" and not v else _flag(k) for k, v in old.items()
    )
    warnings.warn(f"{used} is deprecated; use --target-transform {name}.", FutureWarning, stacklevel=3)
    options["target_transform"] = name
    return options


def build_config(config: RunConfig | str | Path | None = None, **options: Any) -> RunConfig:
    """A base config (object, JSON path or None) updated with flat options; validated.

    A JSON file may be partial (any subset of sections and fields); flags fill in the rest."""
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, RunConfig):
        data = unstructure(config)
    else:
        data = read_config_file(config)
    options = translate_legacy({k: v for k, v in options.items() if v is not None})
    for section in ("data", "model", "training"):
        data.setdefault(section, {})
    if "fusion" in options and options["fusion"] != data["model"].get("fusion"):
        data["model"].pop("fusion_options", None)  # they belonged to the file's fusion
    fusion_names = None
    for key, value in options.items():
        if key in ("output_dir", "task"):
            data[key] = str(value)
        elif key == "categorical_columns":
            data["data"][key] = split_columns(value)
        elif key in FIELD_SECTION:
            data[FIELD_SECTION[key]][key] = str(value) if isinstance(value, Path) else value
        else:
            fusion_names = fusion_names if fusion_names is not None else fusion_option_names()
            if key not in fusion_names:
                raise ConfigError(f"Unknown option {_flag(key)} (Python: {key}=).")
            data["model"].setdefault("fusion_options", {})[key] = value
    if "table" not in data["data"]:
        raise ConfigError("--table is required (or --demo).")
    where = f"config file {config}" if isinstance(config, str | Path) else "configuration"
    return structure(data, RunConfig, where)
