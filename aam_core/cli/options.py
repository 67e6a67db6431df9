"""Click options generated from the config classes and from plugins' options classes, so flags,
defaults and help never drift from the config, and the core names no plugin.

Each attrs field carries its help text and ``--help`` section in its metadata
(``aam_core.config._help``). Options default to None, so only flags actually given override a
``--config`` file, while ``--help`` shows the config's real default. Plugin options (a fusion's
``cross_attn_heads``) are added when a command is first parsed or its help shown, so
``aam --help`` never imports a plugin.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import click

#: ``--help`` sections, in order; options without a section go last.
GROUPS = ("data", "model", "training", "pretraining", "fusion options", "output", "other")


def _default(field: attrs.Attribute) -> Any:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    return None if default is attrs.NOTHING else default


def _base_type(hint: Any) -> Any:
    """``int | None`` → int; ``list[str]`` → list."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _base_type(args[0])
    return typing.get_origin(hint) or hint


def field_options(
    cls: type,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    group: str | None = None,
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
) -> list[click.Option]:
    """One click option per attrs field of ``cls`` (fields with ``cli: False`` metadata skipped);
    ``defaults`` names the fields whose default differs for this command (shown in the help)."""
    hints = typing.get_type_hints(cls)
    wanted = None if only is None else set(only)
    out = []
    for field in attrs.fields(cls):
        meta = field.metadata
        if meta.get("cli") is False or field.name in skip or (wanted is not None and field.name not in wanted):
            continue
        flag = field.name.replace("_", "-")
        kind = _base_type(hints[field.name])
        default = (defaults or {}).get(field.name, _default(field))
        text = meta.get("help") or f"{prefix}{field.name.replace('_', ' ')}."
        if kind is bool:
            text = f"{text}  [default: {'on' if default else 'off'}]"
            option = click.Option([f"--{flag}/--no-{flag}", field.name], default=None, help=text)
        else:
            if default not in (None, [], {}) and "[default:" not in text:
                text = f"{text}  [default: {','.join(default) if isinstance(default, list) else default}]"
            types_ = {int: int, float: float}
            choices = meta.get("choices")
            click_type = click.Choice(choices) if choices else types_.get(kind, str)
            option = click.Option([f"--{flag}", field.name], default=None, type=click_type, help=text)
        option.group = group or meta.get("group", "other")  # type: ignore[attr-defined]
        out.append(option)
    return out


def plugin_options(family: str) -> list[click.Option]:
    """Flags of every installed plugin's options class in ``family`` (names shared by several
    plugins appear once)."""
    from aam_core.plugins import list_plugins

    seen: set[str] = set()
    out = []
    for info in list_plugins(family):
        if info.spec.options is None:
            continue
        for option in field_options(info.spec.options, group=f"{family} options", prefix=f"{info.name}: "):
            if option.name not in seen:
                seen.add(option.name)
                out.append(option)
    return out


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists options by section, with plugin options added lazily."""

    def __init__(self, *args: Any, plugin_families: tuple[str, ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugin_families = plugin_families
        self._plugins_added = False

    def _add_plugin_params(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        names = {p.name for p in self.params}
        for family in self.plugin_families:
            for option in plugin_options(family):
                if option.name not in names:
                    names.add(option.name)
                    self.params.append(option)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        self._add_plugin_params()
        return super().get_params(ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "group", "other"), []).append(record)
        for name in [*GROUPS, *sorted(set(sections) - set(GROUPS))]:
            if name in sections:
                with formatter.section(f"{name.capitalize()} options" if name != "fusion options" else "Fusion plugin options"):
                    formatter.write_dl(sections[name])


def grouped(option: Callable, group: str) -> Callable:
    """A ``click.option`` decorator whose option is listed under ``group`` in ``--help``."""

    def decorator(func: Callable) -> Callable:
        func = option(func)
        func.__click_params__[-1].group = group  # type: ignore[attr-defined]
        return func

    return decorator


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
