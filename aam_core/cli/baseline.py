"""``aam baseline``: fit a baseline on a training list, predict a validation list, compare."""

from __future__ import annotations

import click
from click.core import ParameterSource

from aam_core.cli.options import parse_key_values

#: Flags of baseline options (the random forest's); only those typed on the command line are
#: passed on, so a baseline without the option rejects them by name.
OPTION_FLAGS = ("n_estimators", "max_features", "random_seed", "n_jobs")
_REQUIRED = ("table", "metadata", "metadata_column", "train_samples", "output")


_path = click.Path(dir_okay=False)
_existing = click.Path(exists=True, dir_okay=False)


@click.command(
    "baseline", short_help="Fit a baseline (random forest) and score validation or test samples."
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
    "--val-samples",
    type=_existing,
    help="File of validation sample IDs, one per line: scored, or fitted on with --test-samples. "
    "[required without --test-samples]",
)
@click.option(
    "--test-samples",
    type=_existing,
    help="File of test sample IDs: score these only, fitting on the training and validation "
    "samples together (the forest tunes only out of bag, on the samples it fits, so the "
    "samples AAM uses for early stopping are training data for it).",
)
@click.option(
    "--output",
    type=_path,
    help="Predictions TSV to write; the figures go beside it (.png). [required]",
)
@click.option(
    "--features",
    type=click.Choice(["relative", "counts"]),
    default="relative",
    help="Each ASV's share of the sample's full read count, or raw counts.",
)
@click.option(
    "--classifier", is_flag=True, help="Classify a categorical target instead of regressing."
)
@click.option("--sequences", type=_existing, help="FASTA mapping hashed feature IDs to sequences.")
@click.option(
    "--rarefy-depth",
    type=int,
    help="Rarefy every sample to this many reads first, as 'aam train --rarefy-depth' does.",
)
@click.option(
    "--categorical-columns",
    help="Comma-separated metadata columns given to the baseline as one indicator per value "
    "(what 'aam train --categorical-columns' gives AAM).",
)
@click.option("--n-estimators", type=int, default=500, help="Trees in the forest.")
@click.option(
    "--max-features",
    default="oob",
    help="Features tried per split: oob (the best of sqrt, 0.1, 0.33 and all by out-of-bag "
    "error on the fitted samples), sqrt, log2, all, a fraction (0.3) or a count (50).",
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
    """Fit baseline NAME (e.g. random-forest) and score it on the validation or test samples.

    Writes sample_id, actual, predicted (plus one probability column per class for a
    classifier) — the layout of AAM's val_predictions.tsv — so that 'aam evaluate' can compare
    the two on the same samples. Features are each ASV's share of the sample's full read count
    (or raw counts with --features counts).

    \b
    Figures beside --output rf.tsv: rf.png (predicted vs actual) for regression; for
    --classifier, rf.confusion.png and, with two classes, rf.roc.png.
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
    if kwargs["val_samples"] is None and kwargs["test_samples"] is None:
        raise click.UsageError("Missing option '--val-samples' (or give '--test-samples').")
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
        test_samples=kwargs["test_samples"],
        output=kwargs["output"],
        features=kwargs["features"],
        classifier=kwargs["classifier"],
        sequences=kwargs["sequences"],
        rarefy_depth=kwargs["rarefy_depth"],
        categorical_columns=kwargs["categorical_columns"],
        options=options,
    )
    if result.n_test:
        samples = (
            f"fitted on {result.n_train} training + {result.n_val} validation, "
            f"scored on {result.n_test} test"
        )
    else:
        samples = f"{result.n_train} training, {result.n_val} validation"
    described = kwargs["features"]
    if result.n_indicators:
        described += f": {result.n_features - result.n_indicators} ASVs + {result.n_indicators} category indicators"
    click.echo(f"Samples: {samples}; {result.n_features} features ({described}).")
    from aam_core.training.metrics import format_metrics, format_report

    order = ("r2", "mae", "rmse", "accuracy", "f1", "auc", "n")
    click.echo(f"{name}: " + format_metrics(result.metrics, order=order))
    if result.report is not None:
        click.echo(format_report(result.report))
    click.echo(f"Predictions: {result.output}")
    if result.plot is not None:
        what = "Confusion matrix" if kwargs["classifier"] else "Plot"
        click.echo(f"{what}: {result.plot}")
    if result.roc_plot is not None:
        click.echo(f"ROC curve: {result.roc_plot}")
