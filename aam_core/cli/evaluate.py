"""``aam evaluate``: metrics of several prediction files side by side, on identical samples."""

from __future__ import annotations

import math

import click


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


@click.command("evaluate", short_help="Compare prediction files side by side on the same samples.")
@click.option(
    "--predictions",
    "flagged",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A predictions TSV (sample_id, actual, predicted); repeat the flag or list several paths.",
)
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--classifier/--regression",
    default=None,
    show_default="decided from the files",
    help="Score as classification or regression.",
)
def command(flagged: tuple[str, ...], paths: tuple[str, ...], classifier: bool | None) -> None:
    """Compare prediction files (AAM's val_predictions.tsv, a baseline's TSV) on the same samples.

    \b
    aam evaluate --predictions aam/val_predictions.tsv --predictions rf.tsv
    aam evaluate --predictions aam/val_predictions.tsv rf.tsv
    """
    from aam_core.evaluation import evaluate

    files = [*flagged, *paths]
    if not files:
        raise click.UsageError("Give at least one file with --predictions.")
    table = evaluate(files, classifier=classifier)
    header = [str(c) for c in table.columns]
    rows = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in [header, *rows]:
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        click.echo("  ".join(cells).rstrip())
