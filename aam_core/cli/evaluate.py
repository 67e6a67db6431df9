"""``aam evaluate``: metrics of several prediction files side by side, on identical samples."""

from __future__ import annotations

import math

import click


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _echo_table(table) -> None:
    from aam_core.training.metrics import format_table

    rows = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    click.echo(format_table([str(c) for c in table.columns], rows))


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
@click.option(
    "--per-class",
    is_flag=True,
    help="Also print each class's precision, recall, F1 and support (classification).",
)
def command(
    flagged: tuple[str, ...], paths: tuple[str, ...], classifier: bool | None, per_class: bool
) -> None:
    """Compare prediction files (AAM's val_predictions.tsv, a baseline's TSV) on the same samples.

    Regression: MAE, RMSE, R², n. Classification: accuracy, macro F1, n, and ROC AUC for files
    that carry a probability column per class (QIIME 2's layout) for two classes ('-' where a
    file has none).

    \b
    aam evaluate --predictions aam/val_predictions.tsv --predictions rf.tsv
    aam evaluate --predictions aam/val_predictions.tsv rf.tsv --per-class
    """
    from aam_core.evaluation import evaluate, evaluate_per_class

    files = [*flagged, *paths]
    if not files:
        raise click.UsageError("Give at least one file with --predictions.")
    table = evaluate(files, classifier=classifier)
    report = evaluate_per_class(files, classifier=classifier) if per_class else None
    _echo_table(table)
    if report is not None:
        click.echo("")
        _echo_table(report)
