"""``aam cv``: k-fold cross-validation of AAM against a baseline on identical folds."""

from __future__ import annotations

import math

import attrs
import click

from aam_core.config import DataConfig, ModelConfig, TrainConfig


def _default(config: type, name: str) -> str:
    """The training default shown in --help; the flag itself defaults to None (not passed)."""
    field = attrs.fields_dict(config)[name]
    value = field.default
    if isinstance(value, attrs.Factory):
        value = value.factory()
    return "none" if value in (None, []) else str(value)


#: Training flags passed to aam_core.api.train when given: (flag name, type, config, help).
TRAIN_FLAGS = (
    ("epochs", int, TrainConfig, "Training epochs per fold."),
    ("batch_size", int, TrainConfig, "Samples per batch."),
    ("lr", float, TrainConfig, "Peak learning rate."),
    ("categorical_columns", str, DataConfig, "Comma-separated categorical metadata columns."),
    ("fusion", str, ModelConfig, "How sequences and categorical metadata combine."),
    ("target_transform", str, TrainConfig, "Reversible scaling of the target."),
    ("max_asvs", int, DataConfig, "Most abundant ASVs kept per sample."),
    ("embedding_dim", int, ModelConfig, "Width of the model."),
    ("attention_layers", int, ModelConfig, "Transformer layers of the sample encoder."),
    ("attention_heads", int, ModelConfig, "Attention heads."),
    ("dropout", float, ModelConfig, "Dropout rate."),
    ("device", str, TrainConfig, "Device for training (cuda, cuda:1, cpu)."),
)


def _train_options(func):
    for name, kind, config, text in reversed(TRAIN_FLAGS):
        func = click.option(
            "--" + name.replace("_", "-"),
            name,
            type=kind,
            default=None,
            show_default=_default(config, name),
            help=text,
        )(func)
    return func


def _cell(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "nan"
    return f"{mean:.3f}" if math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


@click.command("cv", short_help="Cross-validate AAM against a baseline on identical folds.")
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
@click.option("--seed", type=int, default=42, help="Seed of the fold assignment.")
@click.option("--force", is_flag=True, help="Overwrite an existing output directory's runs.")
@click.option(
    "--baseline", default="random-forest", help="Baseline run on the same folds ('none': AAM only)."
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON training config (as written to config.json), passed to every fold.",
)
@click.option(
    "--sequences", type=click.Path(exists=True, dir_okay=False), help="FASTA for hashed IDs."
)
@click.option(
    "--classifier", is_flag=True, help="Classify a categorical target instead of regressing."
)
@_train_options
def command(**kwargs) -> None:
    """Cross-validate AAM and a baseline on the same folds; print mean ± sd per model.

    Writes folds.tsv, fold-<k>/ runs, pooled_<model>.tsv and cv_metrics.json to --output-dir.
    Training flags left out use the config file's value, else AAM's default.
    """
    from aam_core.cv import cross_validate

    given = {
        name: kwargs.pop(name) for name in [f for f, *_ in TRAIN_FLAGS] + ["config", "sequences"]
    }
    train_options = {name: value for name, value in given.items() if value is not None}
    if kwargs.pop("classifier"):
        train_options["classifier"] = True
    if kwargs["baseline"].strip().lower() == "none":
        kwargs["baseline"] = None

    result = cross_validate(**kwargs, **train_options)
    summary = result.summary
    metrics = list(dict.fromkeys(summary["metric"]))
    labels = {"mae": "MAE", "rmse": "RMSE", "r2": "R²", "accuracy": "accuracy", "f1": "F1"}
    header = ["model", *(labels.get(m, m) for m in metrics)]
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
