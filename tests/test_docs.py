"""The README documents every hook, the decision guide and commands that really exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aam_core import hookspecs, list_plugins
from aam_core.guide import categorical_guide

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


@pytest.mark.parametrize("hook", sorted(hookspecs.FAMILY_HOOKS.values()))
def test_every_hook_is_documented_in_the_plugin_section(hook):
    assert f"`{hook}`" in _section("Plugins")


def test_the_readme_holds_the_categorical_guide_verbatim():
    """The guide of AAM's own fusions (third-party ones add rows on a user's machine)."""
    builtin = [info.spec for info in list_plugins("fusion") if info.distribution == "aam"]
    assert categorical_guide(builtin).strip() in README


def test_the_readme_set_up_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    setup = _section("Set-up")
    test_command = 'python -m pip install torch==2.13.0 -e ".[dev]" -e examples/aam-fusion-example'
    assert test_command in setup and test_command in ci
    assert "aam train --demo" in setup


def test_every_command_the_readme_runs_exists():
    from aam_core.cli import _register_commands, cli

    _register_commands()
    used = set(re.findall(r"^\s*aam (\w+)", README, re.M))
    assert used, "the README shows no aam command"
    assert used <= set(cli.commands), used - set(cli.commands)
