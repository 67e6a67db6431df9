"""Plugin discovery and lookup.

Plugins are modules named by entry points in the ``aam`` group. They load lazily on first lookup,
once per process. A plugin that fails to import is a warning, not a crash. ``AAM_BLOCK_PLUGINS``
(comma-separated) blocks entry points or plugin names.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from importlib import metadata
from typing import Any

import attrs
import pluggy

from aam_core import hookspecs
from aam_core.errors import PluginError
from aam_core.specs import SPEC_TYPES, kebab

ENTRY_POINT_GROUP = "aam"
BLOCK_ENV = "AAM_BLOCK_PLUGINS"

FAMILY_LABELS = {
    "fusion": "fusion",
    "transform": "target transform",
    "parallel": "parallel strategy",
    "baseline": "baseline",
}


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be imported; the others still load."""


@attrs.frozen
class PluginInfo:
    """One registered implementation, as ``aam plugins`` lists it."""

    family: str
    name: str
    provider: str
    distribution: str
    version: str
    description: str
    spec: Any = attrs.field(eq=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {
            "family": self.family,
            "name": self.name,
            "provider": self.provider,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description,
        }


def _blocked_from_env() -> frozenset[str]:
    raw = os.environ.get(BLOCK_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _check_family(family: str) -> None:
    if family not in hookspecs.FAMILY_HOOKS:
        choices = ", ".join(sorted(hookspecs.FAMILY_HOOKS))
        raise PluginError(f"Unknown plugin family '{family}'. Available: {choices}.")


class PluginRegistry:
    """A pluggy manager over one entry-point group plus the specs its plugins return."""

    def __init__(self, group: str = ENTRY_POINT_GROUP, blocked: frozenset[str] | None = None):
        self.group = group
        self.blocked = _blocked_from_env() if blocked is None else frozenset(blocked)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._dists: dict[str, tuple[str, str]] = {}
        self._loaded = False
        self._cache: dict[str, dict[str, PluginInfo]] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, plugin: object, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object directly (scripts and tests); entry points do this for you."""
        if name in self.blocked:
            return
        self.manager.register(plugin, name=name)
        self._dists[name] = (distribution, version)
        self._cache.clear()

    def load(self) -> PluginRegistry:
        """Import every entry point of the group once; broken plugins warn and are skipped."""
        if self._loaded:
            return self
        self._loaded = True
        for ep in sorted(metadata.entry_points(group=self.group), key=lambda e: e.name):
            if ep.name in self.blocked or self.manager.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ""
            dist_version = dist.version if dist is not None else ""
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the others
                warnings.warn(
                    f"Plugin '{ep.name}' from {dist_name or 'an unknown distribution'} failed to "
                    f"load and was skipped: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            self.register(plugin, ep.name, dist_name, dist_version)
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"A plugin implements an unknown hook: {exc}") from None
        return self

    # -- lookup -------------------------------------------------------------------------------
    def infos(self, family: str) -> dict[str, PluginInfo]:
        """Every implementation of a family, by name; duplicate names fail naming both providers."""
        _check_family(family)
        self.load()
        if family in self._cache:
            return self._cache[family]
        spec_type = SPEC_TYPES[family]
        hook = getattr(self.manager.hook, hookspecs.FAMILY_HOOKS[family])
        found: dict[str, PluginInfo] = {}
        for impl in hook.get_hookimpls():
            provider = impl.plugin_name
            for spec in impl.function() or []:
                if not isinstance(spec, spec_type):
                    raise PluginError(
                        f"Plugin '{provider}' returned {type(spec).__name__} from "
                        f"{hookspecs.FAMILY_HOOKS[family]}; expected {spec_type.__name__}."
                    )
                if spec.name in self.blocked:
                    continue
                if spec.name in found:
                    other = found[spec.name].provider
                    raise PluginError(
                        f"Two plugins provide {FAMILY_LABELS[family]} '{spec.name}': "
                        f"'{other}' and '{provider}'. Uninstall one or block it with {BLOCK_ENV}."
                    )
                dist, version = self._dists.get(provider, ("", ""))
                found[spec.name] = PluginInfo(
                    family, spec.name, provider, dist, version, spec.description, spec
                )
        self._cache[family] = dict(sorted(found.items()))
        return self._cache[family]

    def get(self, family: str, name: str) -> Any:
        """The spec registered under ``name``; an unknown name lists the sorted choices."""
        infos = self.infos(family)
        key = kebab(name)
        if key not in infos:
            choices = ", ".join(infos) or "(none installed)"
            raise PluginError(
                f"Unknown {FAMILY_LABELS[family]} '{name}'. Available: {choices}. "
                "Run 'aam plugins'."
            )
        return infos[key].spec

    def list(self, family: str | None = None, pattern: str | None = None) -> list[PluginInfo]:
        """Sorted by family then name; ``pattern`` is a glob over names (``'*attention*'``)."""
        families = [family] if family else sorted(hookspecs.FAMILY_HOOKS)
        out = [info for fam in families for info in self.infos(fam).values()]
        if pattern:
            out = [info for info in out if fnmatch.fnmatch(info.name, pattern)]
        return out


_default: PluginRegistry | None = None


def registry() -> PluginRegistry:
    """The process-wide registry over the ``aam`` group, created on first use."""
    global _default
    if _default is None:
        _default = PluginRegistry()
    return _default


def get_plugin(family: str, name: str) -> Any:
    """The spec of the plugin ``name`` in ``family`` (``fusion``, ``transform``, ``parallel``,
    ``baseline``)."""
    return registry().get(family, name)


def list_plugins(family: str | None = None, pattern: str | None = None) -> list[PluginInfo]:
    """Every registered plugin, optionally one family or names matching a glob."""
    return registry().list(family, pattern)
