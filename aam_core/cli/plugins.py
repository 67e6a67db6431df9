"""``aam plugins``: what is installed, from which distribution."""

from __future__ import annotations

import json

import click

from aam_core.plugins import FAMILY_LABELS, list_plugins


@click.command("plugins")
@click.option("--family", type=click.Choice(sorted(FAMILY_LABELS)), help="Only this family.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(family: str | None, as_json: bool) -> None:
    """List installed plugins: family, name, provider, distribution, version, description."""
    infos = list_plugins(family)
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    headers = ["family", "name", "provided by", "distribution", "version", "description"]
    rows = [
        [i.family, i.name, i.provider, i.distribution or "-", i.version or "-", i.description]
        for i in infos
    ]
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
