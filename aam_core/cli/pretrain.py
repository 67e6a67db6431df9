"""``aam pretrain``: flags → :func:`aam_core.pretrain` (UniFrac + masked nucleotides, no labels)."""

from __future__ import annotations

import os

import click

from aam_core.cli.options import GroupedCommand, field_options, given
from aam_core.cli.train import strategy_option, strategy_options
from aam_core.config import PRETRAIN_PENALTIES, DataConfig, ModelConfig, TrainConfig

DATA_FIELDS = ("table", "sequences", "max_asvs", "max_bp", "rarefy_depth", "val_fraction", "tree", "unifrac_matrix", "unifrac_metric", "prune_missing")
MODEL_FIELDS = ("embedding_dim", "attention_heads", "attention_layers", "asv_layers", "patch_size", "feedforward_mult", "dropout")
#: Training fields that only mean something with a target column.
SUPERVISED_ONLY = (
    "target_transform",
    "count_loss_weight",
    "target_loss",
    "count_mask_ratio",
    "category_dropout",
    "categorical_lr",
    "pretrained_encoder",
    "freeze_base",
)


def _pretrain(config_file: str | None, force: bool, resume_from: str | None, **params) -> None:
    """Pretrain an encoder on UniFrac distances and masked nucleotides; no metadata needed.

    \b
    aam pretrain --table table.biom --tree tree.nwk --output-dir runs/pretrain
    aam train ... --pretrained-encoder runs/pretrain/checkpoints/best.pt [--freeze-base]
    """
    from aam_core.api import pretrain

    options = strategy_options(params)
    result = pretrain(config_file, force=force, resume_from=resume_from, **given(params), **options)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process reports
        click.echo(f"Best epoch {result.best_epoch}; outputs in {result.output_dir}")


def _params() -> list[click.Option]:
    own = [
        (["--config", "config_file"], dict(type=click.Path(), help="JSON run config (a pretraining run's config.json)."), "data"),
        (["--output-dir"], dict(type=click.Path(), help="Where the run's files go."), "output"),
        (["--force"], dict(is_flag=True, help="Start over in an output directory that holds a run (only AAM's own files are removed)."), "output"),
        (["--resume-from"], dict(type=click.Path(), help="Continue the run of this checkpoints/last.pt in its own directory."), "output"),
    ]
    out = []
    for decls, kwargs, group in own:
        option = click.Option(decls, **kwargs)
        option.group = group  # type: ignore[attr-defined]
        out.append(option)
    return [
        *out,
        *field_options(DataConfig, only=DATA_FIELDS),
        *field_options(ModelConfig, only=MODEL_FIELDS),
        *field_options(TrainConfig, skip=SUPERVISED_ONLY, defaults=PRETRAIN_PENALTIES),
        strategy_option(),
    ]


command = GroupedCommand(
    "pretrain",
    callback=_pretrain,
    params=_params(),
    help=_pretrain.__doc__,
    short_help="Pretrain the encoder on UniFrac distances and masked nucleotides.",
)
