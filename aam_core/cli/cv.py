"""``aam cv``: k-fold cross-validation of AAM against a baseline on identical folds."""

from __future__ import annotations

import math

import click

from aam_core.cli.options import GroupedCommand, parse_key_values
from aam_core.cli.train import model_and_training_options, model_and_training_params
from aam_core.training.metrics import METRIC_LABELS


def _cell(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "nan"
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


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
    """Cross-validate AAM and a baseline on the same folds; print mean ± sd per model.

    Writes folds.tsv, fold-<k>/ runs, pooled_<model>.tsv and cv_metrics.json to --output-dir.
    Training flags left out use the config file's value, else AAM's default.
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
    kwargs["baseline_options"] = parse_key_values(kwargs.pop("baseline_option"), "--baseline-option")
    if kwargs["baseline"].strip().lower() == "none":
        kwargs["baseline"] = None

    result = cross_validate(**kwargs, **train_options)
    summary = result.summary
    metrics = list(dict.fromkeys(summary["metric"]))
    header = ["model", *(METRIC_LABELS.get(m, m) for m in metrics)]
    rows = []
    for model, part in summary.groupby("model", sort=False):
        by_metric = part.set_index("metric")
        rows.append(
            [str(model), *(_cell(by_metric.at[m, "mean"], by_metric.at[m, "sd"]) for m in metrics)]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    click.echo(f"{result.metrics['folds']}-fold cross-validation (mean ± sd over folds):")
    for line in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    click.echo(f"Results: {result.output_dir}")


CV_OWN = ("table", "metadata", "metadata_column", "folds", "group_by", "stratify_by", "output_dir", "force", "baseline", "baseline_option", "config")

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
