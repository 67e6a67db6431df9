"""Records a plugin returns from its hook.

A hook returns data, never registers by side effect: each record names one implementation and
carries its factory. The core validates names, rejects duplicates and builds instances on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


def kebab(name: str) -> str:
    """The form of a name a person types: ``Cross_Attention`` → ``cross-attention``."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


@attrs.frozen
class _Spec:
    #: The kebab-case name a person types (``--fusion gmu``).
    name: str = attrs.field(converter=kebab)
    #: Builds the implementation; its arguments depend on the family (see ``interfaces``).
    factory: Callable[..., Any]
    #: One line shown by ``aam plugins``.
    description: str
    #: An attrs class holding this plugin's own options, or None when it has none.
    options: type | None = None

    family = "plugin"

    def make_options(self, values: dict[str, Any] | None = None) -> Any:
        """Build this plugin's options object from a dict (``None`` when it takes none)."""
        from aam_core.config import structure_options

        return structure_options(self, values or {})


@attrs.frozen
class FusionSpec(_Spec):
    """A fusion module: ``factory(dim=int, n_columns=int, options=...) -> Fusion``.

    ``need`` and ``hint`` make the fusion's row of ``aam train --categorical-help``: the need it
    answers ("adaptive weighting of metadata vs sequences") and what follows ``--fusion NAME``
    there ("(gate values in TensorBoard)"); a newline continues either on the next line."""

    need: str = ""
    hint: str = ""

    family = "fusion"


@attrs.frozen
class TransformSpec(_Spec):
    """A target transform: ``factory(options=...) -> TargetTransform``."""

    family = "transform"


@attrs.frozen
class StrategySpec(_Spec):
    """A parallel strategy: ``factory(device=str | None, options=...) -> ParallelStrategy``."""

    family = "parallel"


@attrs.frozen
class BaselineSpec(_Spec):
    """A baseline model: ``factory(task=str, options=...) -> Baseline``."""

    family = "baseline"


SPEC_TYPES: dict[str, type[_Spec]] = {
    "fusion": FusionSpec,
    "transform": TransformSpec,
    "parallel": StrategySpec,
    "baseline": BaselineSpec,
}
