"""The categorical-conditioning decision guide (``aam train --categorical-help``, README),
assembled from the installed fusion plugins' ``need`` and ``hint``: the core names no fusion."""

from __future__ import annotations

from collections.abc import Iterable

NEED_WIDTH = 43

HEADER = """\
Choosing how metadata conditions the model (--fusion, with --categorical-columns):

  need                                         use
  -------------------------------------------  ----------------------------------------------"""

FOOTER = """\
--conditional-output-scaling COL adds a learned per-category scale and bias to the output, with
any fusion. --categorical-lr sets a separate learning rate for embeddings, fusion and output
scaling. --category-dropout trains the 'unknown' category used for unseen or missing values.
Run 'aam plugins --family fusion' for every installed fusion, third-party ones included."""


def _row(need: str, use: str) -> list[str]:
    needs, uses = need.split("\n"), use.split("\n")
    lines = []
    for i in range(max(len(needs), len(uses))):
        left = needs[i] if i < len(needs) else ""
        right = uses[i] if i < len(uses) else ""
        if i and right:
            right = "  " + right
        lines.append(f"  {left:<{NEED_WIDTH}}  {right}".rstrip())
    return lines


def categorical_guide(specs: Iterable | None = None) -> str:
    """The guide over ``specs`` (default: every installed fusion); fusions without a ``need``
    are listed by name only at the end."""
    if specs is None:
        from aam_core.plugins import list_plugins

        specs = [info.spec for info in list_plugins("fusion")]
    lines = HEADER.split("\n")
    unlisted = []
    for spec in specs:
        if not spec.need:
            unlisted.append(spec.name)
            continue
        hint = spec.hint.split("\n")
        first = f"--fusion {spec.name}" + (f" {hint[0]}" if hint[0] else "")
        lines += _row(spec.need, "\n".join([first, *hint[1:]]))
    if unlisted:
        lines += ["", "Also installed: " + ", ".join(unlisted) + "."]
    return "\n".join([*lines, "", FOOTER])
