"""Click options generated from the config classes, so flags, defaults and help never drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import click

from aam_core.config import DataConfig, ModelConfig, TrainConfig

_CLASSES = {"data": DataConfig, "model": ModelConfig, "training": TrainConfig}


def _default(section: str, name: str) -> Any:
    field = attrs.fields_dict(_CLASSES[section])[name]
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    return None if default is attrs.NOTHING else default


def config_option(section: str, name: str, help: str, **kwargs: Any) -> Callable:
    """``--name`` for a config field; default None (so only given flags override a --config
    file) while --help shows the config's real default."""
    flag = "--" + name.replace("_", "-")
    default = _default(section, name)
    if default not in (None, [], {}, False) and "[default:" not in help:
        help = f"{help}  [default: {default}]"
    return click.option(flag, name, default=None, show_default=False, help=help, **kwargs)


def bool_option(section: str, name: str, help: str) -> Callable:
    """``--name/--no-name`` for a boolean config field."""
    flag = name.replace("_", "-")
    default = "on" if _default(section, name) else "off"
    return click.option(
        f"--{flag}/--no-{flag}", name, default=None, show_default=False, help=f"{help}  [default: {default}]"
    )


def given(params: dict[str, Any]) -> dict[str, Any]:
    """Only the options the user actually gave."""
    return {k: v for k, v in params.items() if v is not None and v != ()}


def _scalar(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_key_values(pairs: tuple[str, ...], flag: str) -> dict[str, object]:
    """``('n_estimators=100', 'criterion=gini')`` → ``{'n_estimators': 100, 'criterion': 'gini'}``:
    options of third-party plugins, whose flags the core cannot know."""
    from aam_core.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got '{pair}'.")
        out[key.strip().replace("-", "_")] = _scalar(value.strip())
    return out
