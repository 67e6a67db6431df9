"""The plugin contract: one hook per family. Each returns a list of spec records.

A plugin is a module (or object) named by an entry point in the ``aam`` group that implements one
or more of these hooks with :data:`hookimpl`. Built-in plugins in ``aam_plugins`` use exactly the
same mechanism.
"""

from __future__ import annotations

import pluggy

from aam_core.specs import BaselineSpec, FusionSpec, StrategySpec, TransformSpec

PROJECT = "aam"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aam_fusions() -> list[FusionSpec]:
    """Fusion modules that combine sequences with categorical metadata.

    Example::

        @hookimpl
        def aam_fusions():
            return [FusionSpec(name="scaled-add", factory=ScaledAdd, description="x + a*sum(cat)")]
    """


@hookspec
def aam_target_transforms() -> list[TransformSpec]:
    """Reversible target scalings selected with ``--target-transform``.

    Example::

        @hookimpl
        def aam_target_transforms():
            return [TransformSpec(name="sqrt", factory=SqrtTransform, description="sqrt(y)")]
    """


@hookspec
def aam_parallel_strategies() -> list[StrategySpec]:
    """Ways to place the model and data on devices, selected with ``--parallel``.

    Example::

        @hookimpl
        def aam_parallel_strategies():
            return [StrategySpec(name="single", factory=SingleDevice, description="one device")]
    """


@hookspec
def aam_baselines() -> list[BaselineSpec]:
    """Baseline models for ``aam baseline`` and ``aam cv``.

    Example::

        @hookimpl
        def aam_baselines():
            return [BaselineSpec(name="ridge", factory=RidgeBaseline, description="ridge regression")]
    """


#: family name → hook name
FAMILY_HOOKS: dict[str, str] = {
    "fusion": "aam_fusions",
    "transform": "aam_target_transforms",
    "parallel": "aam_parallel_strategies",
    "baseline": "aam_baselines",
}
