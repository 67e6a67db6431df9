"""``aam cv``: k-fold cross-validation of AAM against a baseline on identical folds."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import click

from aam_core.cli.options import GroupedCommand, parse_key_values
from aam_core.cli.train import model_and_training_options, model_and_training_params

if TYPE_CHECKING:
    import pandas as pd


def _cell(mean: float, sd: float = math.nan) -> str:
    if math.isnan(mean):
        return "nan"
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def _print_summary(summary: pd.DataFrame, folds: int, models: list[str]) -> None:
    """Two tables, each with a ``difference`` row when there is a baseline: mean ± sd over the
    folds, then the metrics of the pooled predictions."""
    from aam_core.training.metrics import METRIC_LABELS, format_table  # scikit-learn: only when run

    metrics = list(dict.fromkeys(summary["metric"]))
    header = ["model", *(METRIC_LABELS.get(m, m) for m in metrics)]
    parts = [
        (str(model), part.set_index("metric"))
        for model, part in summary.groupby("model", sort=False)
    ]
    means = [
        [name, *(_cell(p.at[m, "mean"], p.at[m, "sd"]) if m in p.index else "" for m in metrics)]
        for name, p in parts
    ]
    pooled = [
        [name, *(_cell(p.at[m, "pooled"]) if m in p.index else "" for m in metrics)]
        for name, p in parts
    ]
    click.echo(f"{folds}-fold cross-validation, scored on held-out folds (mean ± sd over folds):")
    click.echo(format_table(header, means))
    click.echo("Pooled (every sample once, predicted by the fold that held it out):")
    click.echo(format_table(header, pooled))
    if len(models) > 1:
        click.echo(f"(difference: {models[0]} − {models[1]}, paired by fold)")


@click.option(
    "--table", required=True, type=click.Path(exists=True, dir_okay=False), help="BIOM table."
)
@click.option(
    "--metadata", required=True, type=click.Path(exists=True, dir_okay=False), help="Metadata TSV."
)
@click.option("--metadata-column", required=True, help="Target column in the metadata.")
@click.option("--folds", type=int, default=5, help="Number of folds.")
@click.option(
    "--group-by", help="Metadata column whose groups never straddle a fold (e.g. subject)."
)
@click.option("--stratify-by", help="Categorical metadata column balanced across folds.")
@click.option(
    "--val-fraction",
    type=float,
    help="Share of each training fold held out for AAM's early stopping and best.pt (the "
    "baseline fits on it); the held-out fold is never used to select.  [default: the config's, "
    "else 0.2]",
)
@click.option(
    "--output-dir", required=True, type=click.Path(file_okay=False), help="Where runs go."
)
@click.option("--force", is_flag=True, help="Overwrite an existing output directory's runs.")
@click.option(
    "--baseline", default="random-forest", help="Baseline run on the same folds ('none': AAM only)."
)
@click.option(
    "--baseline-option",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the baseline (n_estimators=200), repeatable.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON training config (as written to config.json), passed to every fold.",
)
def _cv(**kwargs) -> None:
    """Cross-validate AAM and a baseline on the same folds, each scored on its held-out fold;
    print mean ± sd per model and their paired difference.

    AAM trains on part of each training fold and picks its best epoch on the rest
    (--val-fraction); the baseline fits on the whole training fold. Writes folds.tsv (with each
    sample's role in every fold), fold-<k>/ runs, pooled_<model>.tsv and cv_metrics.json to
    --output-dir. Training flags left out use the config file's value, else AAM's default;
    --rarefy-depth and --categorical-columns apply to the baseline too (the columns as one
    indicator per value), so it sees what AAM sees.
    """
    from aam_core.cv import cross_validate

    own = {k: kwargs.pop(k) for k in CV_OWN}
    train_options = model_and_training_options(kwargs)
    kwargs = own
    if "seed" in train_options:  # one seed for the folds and every fold's training
        kwargs["seed"] = train_options.pop("seed")
    config = kwargs.pop("config")
    if config is not None:
        train_options["config"] = config
    kwargs["baseline_options"] = parse_key_values(
        kwargs.pop("baseline_option"), "--baseline-option"
    )
    if kwargs["baseline"].strip().lower() == "none":
        kwargs["baseline"] = None

    result = cross_validate(**kwargs, **train_options)
    _print_summary(result.summary, result.metrics["folds"], list(result.metrics["models"]))
    click.echo(f"Results: {result.output_dir}")


CV_OWN = (
    "table",
    "metadata",
    "metadata_column",
    "folds",
    "group_by",
    "stratify_by",
    "output_dir",
    "force",
    "baseline",
    "baseline_option",
    "config",
)

_own_params = list(reversed(getattr(_cv, "__click_params__", [])))
for _param in _own_params:
    _param.group = "data"  # type: ignore[attr-defined]

command = GroupedCommand(
    "cv",
    callback=_cv,
    params=[*_own_params, *model_and_training_params()],
    help=_cv.__doc__,
    short_help="Cross-validate AAM against a baseline on identical folds.",
    plugin_families=("fusion",),
)
