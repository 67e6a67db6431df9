"""Plugin discovery through entry points, with fake distributions under a private group.

Each test writes plugin modules and ``*.dist-info`` folders into ``tmp_path``, puts it on
``sys.path`` and builds ``PluginRegistry(group="aam-test")``: the real ``aam`` group is untouched.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from aam_core import hookspecs
from aam_core.errors import PluginError
from aam_core.plugins import BLOCK_ENV, PluginLoadWarning, PluginRegistry

GROUP = "aam-test"

FUSION_MODULE = """
from aam_core import FusionSpec, hookimpl


def build(dim, n_columns, options=None):
    raise NotImplementedError


@hookimpl
def aam_fusions():
    return [{specs}]
"""


def fusion_source(*names: str) -> str:
    specs = ", ".join(
        f"FusionSpec(name={n!r}, factory=build, description='fake {n}')" for n in names
    )
    return FUSION_MODULE.format(specs=specs)


@pytest.fixture
def install(tmp_path: Path, monkeypatch):
    """``install(dist, module, source, entry_point=None, version='1.0')`` writes a plugin module
    and a ``dist-info`` naming it under ``[aam-test]``. Call it for every plugin before building
    the registry; the modules are forgotten after the test."""
    modules: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def add(
        dist: str, module: str, source: str, entry_point: str | None = None, version: str = "1.0"
    ):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{entry_point or module} = {module}\n")
        modules.append(module)
        sys.modules.pop(module, None)

    yield add
    for module in modules:
        sys.modules.pop(module, None)


def registry(**kwargs) -> PluginRegistry:
    return PluginRegistry(group=GROUP, **kwargs)


# -- discovery ------------------------------------------------------------------------------------
def test_fusion_from_a_fake_distribution_is_listed(install):
    install("fake-aam-plugin", "fake_aam_plugin", fusion_source("fake-fusion"), entry_point="fake")
    reg = registry(blocked=frozenset())
    (info,) = reg.list("fusion")
    assert (info.family, info.name, info.provider) == ("fusion", "fake-fusion", "fake")
    assert (info.distribution, info.version) == ("fake-aam-plugin", "1.0")
    assert info.description == "fake fake-fusion"
    spec = reg.get("fusion", "fake-fusion")
    assert spec is info.spec
    assert spec.factory is sys.modules["fake_aam_plugin"].build
    assert reg.get("fusion", " Fake_Fusion ") is spec  # names are normalised like the CLI's
    assert reg.list("transform") == []


def test_loading_is_lazy_and_happens_once(install):
    install("fake-aam-plugin", "fake_aam_plugin", fusion_source("fake-fusion"))
    reg = registry(blocked=frozenset())
    assert "fake_aam_plugin" not in sys.modules
    reg.list("fusion")
    module = sys.modules["fake_aam_plugin"]
    reg.load()
    reg.list("fusion")
    assert sys.modules["fake_aam_plugin"] is module
    assert len(reg.manager.get_plugins()) == 1


def test_unknown_name_lists_sorted_choices(install):
    install("fake-aam-plugin", "fake_aam_plugin", fusion_source("zeta", "alpha", "mid"))
    reg = registry(blocked=frozenset())
    with pytest.raises(PluginError) as err:
        reg.get("fusion", "gmm")
    assert str(err.value) == (
        "Unknown fusion 'gmm'. Available: alpha, mid, zeta. Run 'aam plugins'."
    )


def test_unknown_name_with_nothing_installed():
    with pytest.raises(PluginError, match=r"Unknown target transform 'sqrt'.*Run 'aam plugins'"):
        registry(blocked=frozenset()).get("transform", "sqrt")


def test_unknown_family_lists_the_families():
    with pytest.raises(PluginError, match="Available: baseline, fusion, parallel, transform"):
        registry(blocked=frozenset()).list("fusions")


def test_two_plugins_with_one_name_fail_naming_both(install):
    install("first-dist", "first_plugin", fusion_source("same"), entry_point="first")
    install("second-dist", "second_plugin", fusion_source("same", "other"), entry_point="second")
    reg = registry(blocked=frozenset())
    with pytest.raises(PluginError) as err:
        reg.list("fusion")
    message = str(err.value)
    assert "'same'" in message and "'first'" in message and "'second'" in message
    assert BLOCK_ENV in message


def test_broken_plugin_warns_and_the_others_load(install):
    install(
        "broken-dist",
        "broken_plugin",
        "raise RuntimeError('boom at import')\n",
        entry_point="broken",
    )
    install("good-dist", "good_plugin", fusion_source("good"), entry_point="good")
    reg = registry(blocked=frozenset())
    with pytest.warns(PluginLoadWarning) as caught:
        names = [info.name for info in reg.list("fusion")]
    assert names == ["good"]
    message = str(caught[0].message)
    assert "'broken'" in message and "broken-dist" in message and "boom at import" in message


@pytest.mark.parametrize("blocked", ["fake", "fake-fusion", " other , fake "])
def test_block_env_blocks_entry_points_and_plugin_names(install, monkeypatch, blocked):
    install("fake-aam-plugin", "fake_aam_plugin", fusion_source("fake-fusion"), entry_point="fake")
    install("keep-dist", "keep_plugin", fusion_source("kept"), entry_point="keep")
    monkeypatch.setenv(BLOCK_ENV, blocked)
    reg = registry()
    assert [info.name for info in reg.list("fusion")] == ["kept"]
    with pytest.raises(PluginError, match="Available: kept"):
        reg.get("fusion", "fake-fusion")


def test_blocked_entry_point_is_not_even_imported(install, monkeypatch):
    install("broken-dist", "broken_plugin", "raise RuntimeError('boom')\n", entry_point="broken")
    monkeypatch.setenv(BLOCK_ENV, "broken")
    reg = registry()
    assert reg.list("fusion") == []
    assert "broken_plugin" not in sys.modules


def test_misspelled_hook_fails_loudly(install):
    source = """
    from aam_core import FusionSpec, hookimpl

    @hookimpl
    def aam_fusion():  # missing the final 's'
        return []
    """
    install("typo-dist", "typo_plugin", source, entry_point="typo")
    with pytest.raises(PluginError, match="aam_fusion"):
        registry(blocked=frozenset()).list("fusion")


def test_wrong_record_type_names_the_plugin(install):
    source = """
    from aam_core import TransformSpec, hookimpl

    @hookimpl
    def aam_fusions():
        return [TransformSpec(name="x", factory=object, description="wrong family")]
    """
    install("wrong-dist", "wrong_plugin", source, entry_point="wrong")
    with pytest.raises(PluginError, match="'wrong'.*expected FusionSpec"):
        registry(blocked=frozenset()).list("fusion")


# -- the real group ---------------------------------------------------------------------------------
BUILT_INS = {
    "fusion": {"concat", "add", "gmu", "cross-attention", "perceiver"},
    "transform": {"none", "minmax", "zscore", "zscore-category", "log-minmax", "log-zscore"},
    "parallel": {"single"},
}


@pytest.mark.parametrize("family", sorted(BUILT_INS))
def test_real_group_lists_the_builtins(fresh_registry, family):
    infos = fresh_registry.infos(family)
    assert BUILT_INS[family] <= set(infos)
    for name in BUILT_INS[family]:
        info = infos[name]
        assert info.distribution == "aam", name
        assert info.version and info.description, name
        assert info.name == name and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
    assert list(infos) == sorted(infos)


def test_list_pattern_is_a_glob(fresh_registry):
    names = [info.name for info in fresh_registry.list(pattern="*zscore*")]
    assert {"zscore", "zscore-category", "log-zscore"} <= set(names)
    assert all("zscore" in name for name in names)


# -- the contract file ----------------------------------------------------------------------------
HOOKSPECS = [
    name
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(func, f"{hookspecs.PROJECT}_spec")
]


def test_every_family_has_a_hookspec():
    assert sorted(HOOKSPECS) == sorted(hookspecs.FAMILY_HOOKS.values())


@pytest.mark.parametrize("hook", HOOKSPECS)
def test_every_hookspec_is_documented_with_an_example(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc, f"{hook} has no docstring"
    summary, _, rest = doc.partition("\n")
    assert summary.strip().endswith("."), f"{hook}: the first line should be a one-line summary"
    assert "Example::" in rest, f"{hook} has no 'Example::' block"
    example = textwrap.dedent(rest.split("Example::", 1)[1]).strip()
    assert "@hookimpl" in example and f"def {hook}(" in example, (
        f"{hook}: example does not implement it"
    )
