"""Run configuration: attrs classes, validated on construction, (de)serialised by one converter.

``config.json`` in every output directory and the copy inside every checkpoint are written by
:func:`unstructure` and read back by :func:`structure`; ``aam train --config`` takes the same format
(any subset of fields).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import validators as v

from aam_core.errors import ConfigError

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def flag_name(attribute: attrs.Attribute) -> str:
    """The flag a person types for a config or plugin-options field: ``--cross-attn-heads``."""
    return "--" + attribute.name.replace("_", "-")


# Validators for config classes and for plugins' own options classes: errors name the flag.
def positive(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value is not None and value <= 0:
        raise ConfigError(f"{flag_name(attribute)} must be positive, got {value}.")


def non_negative(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value is not None and value < 0:
        raise ConfigError(f"{flag_name(attribute)} must be >= 0, got {value}.")


def _unit_interval(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{flag_name(attribute)} must be in [0, 1), got {value}.")


def _fraction(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{flag_name(attribute)} must be between 0 and 1, got {value}.")


def split_columns(value: Any) -> list[str]:
    """``'a,b'`` or ``['a', 'b']`` → ``['a', 'b']``."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(c).strip() for c in value if str(c).strip()]


@attrs.define
class DataConfig:
    """Where the data is and how it becomes batches."""

    table: str
    metadata: str | None = None
    metadata_column: str | None = None
    sequences: str | None = None
    categorical_columns: list[str] = attrs.field(factory=list, converter=split_columns)
    max_asvs: int = attrs.field(default=256, validator=positive)
    max_bp: int = attrs.field(default=150, validator=positive)
    rarefy_depth: int | None = attrs.field(default=None, validator=positive)
    val_fraction: float = attrs.field(default=0.2, validator=_fraction)
    stratify_by: str | None = None
    normalize_by: str | None = None


@attrs.define
class ModelConfig:
    """Shape of the network and which fusion combines sequences with metadata."""

    embedding_dim: int = attrs.field(default=128, validator=positive)
    attention_heads: int = attrs.field(default=4, validator=positive)
    attention_layers: int = attrs.field(default=4, validator=positive)
    asv_layers: int | None = attrs.field(default=None, validator=positive)
    patch_size: int = attrs.field(default=4, validator=positive)
    feedforward_mult: int = attrs.field(default=4, validator=positive)
    dropout: float = attrs.field(default=0.1, validator=_unit_interval)
    fusion: str = "concat"
    fusion_options: dict[str, Any] = attrs.field(factory=dict)
    classifier: bool = False
    out_dim: int = attrs.field(default=1, validator=positive)
    count_prediction: bool = True
    conditional_output_scaling: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.embedding_dim % self.attention_heads:
            raise ConfigError(
                f"--embedding-dim {self.embedding_dim} must be divisible by "
                f"--attention-heads {self.attention_heads}."
            )

    @property
    def n_asv_layers(self) -> int:
        return self.asv_layers or self.attention_layers


@attrs.define
class TrainConfig:
    """Optimisation, schedule, devices and the target transform."""

    epochs: int = attrs.field(default=50, validator=positive)
    batch_size: int = attrs.field(default=16, validator=positive)
    lr: float = attrs.field(default=3e-4, validator=positive)
    categorical_lr: float | None = attrs.field(default=None, validator=positive)
    weight_decay: float = attrs.field(default=0.01, validator=non_negative)
    warmup_fraction: float = attrs.field(default=0.05, validator=_unit_interval)
    grad_clip: float = attrs.field(default=1.0, validator=non_negative)
    grad_accum: int = attrs.field(default=1, validator=positive)
    patience: int = attrs.field(default=10, validator=non_negative)
    seed: int = 42
    device: str | None = None
    parallel: str = "single"
    target_transform: str = "zscore"
    count_loss_weight: float = attrs.field(default=1.0, validator=non_negative)
    target_loss: str = attrs.field(default="mse", validator=v.in_(["mse", "mae", "huber"]))
    amp: bool = True


@attrs.define
class RunConfig:
    """Everything a training run needs; saved as ``config.json`` and inside each checkpoint."""

    data: DataConfig
    model: ModelConfig = attrs.field(factory=ModelConfig)
    training: TrainConfig = attrs.field(factory=TrainConfig)
    output_dir: str | None = None


def _first_config_error(exc: BaseException) -> ConfigError | None:
    if isinstance(exc, ConfigError):
        return exc
    for inner in getattr(exc, "exceptions", []):
        found = _first_config_error(inner)
        if found is not None:
            return found
    return None


def _error_text(exc: Exception, what: str) -> str:
    own = _first_config_error(exc)
    if own is not None:
        return str(own)
    if isinstance(exc, cattrs.BaseValidationError):
        messages = []
        for message in cattrs.transform_error(exc):
            text, _, where = message.rpartition(" @ $.")
            name = where.rsplit(".", 1)[-1]
            messages.append(f"--{name.replace('_', '-')}: {text}" if name and text else message)
        return f"Invalid {what}: " + "; ".join(messages)
    return f"Invalid {what}: {exc}"


def structure(data: dict[str, Any], cls: type[T], what: str = "configuration") -> T:
    """Build ``cls`` from a dict; every problem becomes a one-line :class:`ConfigError`."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(_error_text(exc, what)) from None


def unstructure(obj: Any) -> dict[str, Any]:
    return converter.unstructure(obj)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(unstructure(config), indent=2, sort_keys=True) + "\n")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw JSON of a config file; it may hold only some sections and fields (a recipe such
    as ``examples/oral-age-recommended.json`` leaves out the data paths)."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"Config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a JSON object.")
    return data


def load_config(path: str | Path) -> RunConfig:
    """A complete run config (a run's ``config.json``)."""
    return structure(read_config_file(path), RunConfig, f"config file {path}")


def structure_options(spec: Any, values: dict[str, Any]) -> Any:
    """A plugin's options object from a dict, or None for a plugin without options."""
    if spec.options is None:
        if values:
            flags = ", ".join("--" + k.replace("_", "-") for k in sorted(values))
            raise ConfigError(f"{flags} does not apply to {spec.family} '{spec.name}'.")
        return None
    allowed = {f.name for f in attrs.fields(spec.options)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConfigError(f"{flags} does not apply to {spec.family} '{spec.name}'.")
    return structure(values, spec.options, f"options for {spec.family} '{spec.name}'")
