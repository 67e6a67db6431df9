"""``aam baseline``: fit a baseline on a training list, predict a validation list, compare."""

from __future__ import annotations

import click
from click.core import ParameterSource

from aam_core.cli.options import parse_key_values

#: Flags of baseline options (the random forest's); only those typed on the command line are
#: passed on, so a baseline without the option rejects them by name.
OPTION_FLAGS = ("n_estimators", "max_features", "random_seed", "n_jobs")
_REQUIRED = ("table", "metadata", "metadata_column", "train_samples", "val_samples", "output")


_path = click.Path(dir_okay=False)
_existing = click.Path(exists=True, dir_okay=False)


@click.command(
    "baseline", short_help="Fit a baseline (random forest) and score the validation samples."
)
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the available baselines and exit.")
@click.option(
    "--table", type=_existing, help="BIOM table (features are ASV sequences or hashes). [required]"
)
@click.option("--metadata", type=_existing, help="Metadata TSV (QIIME 2 conventions). [required]")
@click.option("--metadata-column", help="Target column in the metadata. [required]")
@click.option(
    "--train-samples", type=_existing, help="File of training sample IDs, one per line. [required]"
)
@click.option(
    "--val-samples", type=_existing, help="File of validation sample IDs, one per line. [required]"
)
@click.option(
    "--output",
    type=_path,
    help="Predictions TSV to write; the plot goes beside it (.png). [required]",
)
@click.option(
    "--features",
    type=click.Choice(["relative", "counts"]),
    default="relative",
    help="Relative abundance per sample, or raw counts.",
)
@click.option(
    "--classifier", is_flag=True, help="Classify a categorical target instead of regressing."
)
@click.option("--sequences", type=_existing, help="FASTA mapping hashed feature IDs to sequences.")
@click.option("--n-estimators", type=int, default=500, help="Trees in the forest.")
@click.option(
    "--max-features",
    default="sqrt",
    help="Features tried per split: sqrt, log2, all, a fraction (0.3) or a count (50).",
)
@click.option("--random-seed", type=int, default=42, help="Seed of the baseline.")
@click.option("--n-jobs", type=int, default=-1, help="Worker processes; -1 uses every core.")
@click.option(
    "--baseline-option",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of a third-party baseline plugin (repeatable).",
)
@click.pass_context
def command(ctx: click.Context, name: str | None, list_only: bool, **kwargs) -> None:
    """Fit baseline NAME (e.g. random-forest) on the training samples and score the validation ones.

    Writes sample_id, actual, predicted — the format of AAM's val_predictions.tsv — so that
    'aam evaluate' can compare the two on the same samples.
    """
    if list_only:
        from aam_core.cli import plugins

        ctx.invoke(plugins.command, family="baseline", as_json=False)
        return
    if name is None:
        raise click.UsageError("Missing argument 'NAME' (see 'aam baseline --list').")
    for key in _REQUIRED:
        if kwargs[key] is None:
            raise click.UsageError(f"Missing option '--{key.replace('_', '-')}'.")
    options = {
        key: kwargs[key]
        for key in OPTION_FLAGS
        if ctx.get_parameter_source(key) not in (ParameterSource.DEFAULT, None)
    }
    options.update(parse_key_values(kwargs.pop("baseline_option"), "--baseline-option"))

    from aam_core.baseline import run_baseline

    result = run_baseline(
        name,
        table=kwargs["table"],
        metadata=kwargs["metadata"],
        metadata_column=kwargs["metadata_column"],
        train_samples=kwargs["train_samples"],
        val_samples=kwargs["val_samples"],
        output=kwargs["output"],
        features=kwargs["features"],
        classifier=kwargs["classifier"],
        sequences=kwargs["sequences"],
        options=options,
    )
    click.echo(
        f"Samples: {result.n_train} training, {result.n_val} validation; "
        f"{result.n_features} features ({kwargs['features']})."
    )
    from aam_core.training.metrics import format_metrics

    click.echo(f"{name}: " + format_metrics(result.metrics, order=("r2", "mae", "rmse", "accuracy", "f1")))
    click.echo(f"Predictions: {result.output}")
    if result.plot is not None:
        click.echo(f"Plot: {result.plot}")
