"""``aam train``: flags → :func:`aam_core.train`. Every config flag is generated from the config
classes (``aam_core.config``) and every plugin option from its plugin's options class."""

from __future__ import annotations

import os
import warnings

import click

from aam_core.cli.options import GroupedCommand, field_options, given, parse_key_values
from aam_core.config import DataConfig, ModelConfig, TrainConfig

#: Split and file flags: cross-validation sets these itself.
SPLIT_AND_FILES = ("table", "metadata", "metadata_column", "val_fraction", "test_fraction", "stratify_by")

#: Old flag → (new flag, API keyword): still accepted, with a deprecation warning.
RENAMED = {
    "categorical_fusion": ("--fusion", "fusion"),
    "count_penalty": ("--count-loss-weight", "count_loss_weight"),
}


def _show_guide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from aam_core.guide import categorical_guide

    click.echo(categorical_guide())
    ctx.exit(0)


def _legacy() -> list[click.Option]:
    options = [
        click.Option(["--normalize-targets/--no-normalize-targets", "normalize_targets"], default=None, help="Deprecated: use --target-transform minmax / none."),
        click.Option(["--normalize-targets-by", "normalize_targets_by"], default=None, help="Deprecated: use --target-transform zscore-category --normalize-by COL."),
        click.Option(["--log-transform-targets", "log_transform_targets"], is_flag=True, default=None, help="Deprecated: use --target-transform log-minmax."),
        click.Option(["--categorical-fusion", "categorical_fusion"], default=None, help="Deprecated: use --fusion."),
        click.Option(["--count-penalty", "count_penalty"], type=float, default=None, help="Deprecated: use --count-loss-weight."),
    ]
    for option in options:
        option.group = "other"  # type: ignore[attr-defined]
    return options


def model_and_training_params() -> list[click.Option]:
    """Model and training flags, shared by ``aam train`` and ``aam cv``."""
    fusion_option = click.Option(
        ["--fusion-option", "fusion_option"], multiple=True, metavar="KEY=VALUE", help="An option of a fusion plugin (repeatable)."
    )
    fusion_option.group = "fusion options"  # type: ignore[attr-defined]
    return [
        *field_options(DataConfig, skip=SPLIT_AND_FILES),
        *field_options(ModelConfig),
        *field_options(TrainConfig),
        strategy_option(),
        fusion_option,
        *_legacy(),
    ]


def strategy_option() -> click.Option:
    """``--strategy-option KEY=VALUE``: an option of the ``--parallel`` plugin, any plugin."""
    option = click.Option(
        ["--strategy-option", "strategy_option"], multiple=True, metavar="KEY=VALUE", help="An option of the parallel strategy plugin (repeatable)."
    )
    option.group = "training"  # type: ignore[attr-defined]
    return option


def strategy_options(params: dict) -> dict:
    """``{'strategy_options': {...}}`` from ``--strategy-option`` (consumed), or nothing."""
    pairs = params.pop("strategy_option", ())
    return {"strategy_options": parse_key_values(pairs, "--strategy-option")} if pairs else {}


def model_and_training_options(params: dict) -> dict:
    """Every model, training and plugin flag the user gave, as API keywords (consumed from
    ``params``); deprecated names are translated with a warning."""
    for flag in ("log_transform_targets",):  # plain flags: absent means "not given"
        if params.get(flag) is False:
            params[flag] = None
    fusion_option = params.pop("fusion_option", ())
    strategy = strategy_options(params)
    options = {**given(params), **strategy}
    params.clear()
    for old, (flag, new) in RENAMED.items():
        if old in options:
            value = options.pop(old)
            warnings.warn(f"--{old.replace('_', '-')} is deprecated; use {flag}.", FutureWarning, stacklevel=2)
            options.setdefault(new, value)
    options.update(parse_key_values(fusion_option, "--fusion-option"))
    return options


def _run_options() -> list[click.Option]:
    specs = [
        (["--demo"], dict(is_flag=True, help="Use the embedded demo dataset (309 oral samples, host age) as the data."), "data"),
        (["--config", "config_file"], dict(type=click.Path(), help="JSON run config (a run's config.json or a partial recipe); flags override it."), "data"),
        (["--train-samples"], dict(type=click.Path(), help="File of training sample IDs (replaces the random split)."), "data"),
        (["--val-samples"], dict(type=click.Path(), help="File of validation sample IDs (with --train-samples)."), "data"),
        (["--test-samples"], dict(type=click.Path(), help="File of test sample IDs, held out of every selection; writes test_predictions.tsv."), "data"),
        (["--output-dir"], dict(type=click.Path(), help="Where the run's files go."), "output"),
        (["--force"], dict(is_flag=True, help="Start over in an output directory that holds a run (only AAM's own files are removed)."), "output"),
        (["--resume-from"], dict(type=click.Path(), help="Continue the run of this checkpoints/last.pt in its own directory."), "output"),
    ]
    out = []
    for decls, kwargs, group in specs:
        option = click.Option(decls, **kwargs)
        option.group = group  # type: ignore[attr-defined]
        out.append(option)
    guide = click.Option(
        ["--categorical-help"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_guide,
        help="Print which fusion to use for which need, and exit.",
    )
    guide.group = "other"  # type: ignore[attr-defined]
    return [*out, *field_options(DataConfig, only=SPLIT_AND_FILES), guide]


def _train(demo: bool, config_file: str | None, force: bool, train_samples, val_samples, test_samples, resume_from, **params) -> None:
    """Train a model on a BIOM table to predict a metadata column."""
    from aam_core.api import train

    run = {k: params.pop(k) for k in ("output_dir", *SPLIT_AND_FILES)}
    options = {**given(run), **model_and_training_options(params)}
    if demo:
        from aam_core.data.demo import demo_options

        options = {**demo_options(), **options}
    result = train(
        config_file,
        force=force,
        train_samples=train_samples,
        val_samples=val_samples,
        test_samples=test_samples,
        resume_from=resume_from,
        **options,
    )
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process reports
        click.echo(f"Best epoch {result.best_epoch}; outputs in {result.output_dir}")


command = GroupedCommand(
    "train",
    callback=_train,
    params=[*_run_options(), *model_and_training_params()],
    help=_train.__doc__,
    short_help="Train a model to predict a metadata column.",
    plugin_families=("fusion",),
)
