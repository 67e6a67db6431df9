"""``aam train``: flags → :func:`aam_core.train`."""

from __future__ import annotations

import click

from aam_core.cli.options import bool_option, config_option, given, parse_key_values

DATA = [
    ("table", "BIOM table (HDF5 or JSON) whose feature IDs are ASV sequences.", {"type": click.Path()}),
    ("metadata", "Metadata TSV (QIIME 2 conventions).", {"type": click.Path()}),
    ("metadata_column", "Target column to predict.", {}),
    ("sequences", "FASTA mapping hashed feature IDs to sequences (dna-sequences.fasta).", {"type": click.Path()}),
    ("categorical_columns", "Comma-separated categorical metadata columns used as model inputs.", {}),
    ("max_asvs", "Most abundant ASVs kept per sample.", {"type": int}),
    ("max_bp", "Nucleotides kept per ASV.", {"type": int}),
    ("rarefy_depth", "Rarefy every sample to this many reads first.", {"type": int}),
    ("val_fraction", "Share of samples held out for validation.", {"type": float}),
    ("stratify_by", "Categorical column to stratify the train/validation split by.", {}),
    ("normalize_by", "Column whose categories get their own statistics (zscore-category only).", {}),
]
MODEL = [
    ("embedding_dim", "Width of every embedding.", {"type": int}),
    ("attention_heads", "Attention heads in the encoders.", {"type": int}),
    ("attention_layers", "Transformer layers in the sample encoder (and ASV encoder unless --asv-layers).", {"type": int}),
    ("asv_layers", "Transformer layers in the ASV encoder [default: --attention-layers].", {"type": int}),
    ("patch_size", "Nucleotides per ASV-encoder token (k-mer patch); 1 = one token per base.", {"type": int}),
    ("feedforward_mult", "Feed-forward width as a multiple of --embedding-dim.", {"type": int}),
    ("dropout", "Dropout in the sample encoder and heads.", {"type": float}),
    ("fusion", "How categorical metadata is fused (see --categorical-help, 'aam plugins').", {}),
    ("out_dim", "Regression outputs.", {"type": int}),
    ("conditional_output_scaling", "Categorical column with a learned per-category scale and bias on the output.", {}),
]
TRAINING = [
    ("epochs", "Maximum epochs.", {"type": int}),
    ("batch_size", "Samples per batch.", {"type": int}),
    ("lr", "Peak learning rate (AdamW, warmup then cosine).", {"type": float}),
    ("categorical_lr", "Learning rate of categorical embeddings, fusion and output scaling [default: --lr].", {"type": float}),
    ("weight_decay", "AdamW weight decay.", {"type": float}),
    ("warmup_fraction", "Share of steps spent warming the learning rate up.", {"type": float}),
    ("grad_clip", "Gradient-norm clip (0 = off).", {"type": float}),
    ("grad_accum", "Batches accumulated per optimizer step.", {"type": int}),
    ("patience", "Early stopping: epochs without validation improvement (0 = off).", {"type": int}),
    ("seed", "Seed for the split, initialisation and shuffling.", {"type": int}),
    ("device", "Force a device (cpu, cuda, cuda:1) [default: CUDA if available].", {}),
    ("parallel", "Parallel strategy plugin.", {}),
    ("target_transform", "Target transform plugin.", {}),
    ("target_loss", "Regression loss.", {"type": click.Choice(["mse", "mae", "huber"])}),
    ("count_loss_weight", "Weight of the count-reconstruction loss.", {"type": float}),
]
FUSION_OPTIONS = [
    ("cross_attn_heads", "cross-attention: heads (must divide --embedding-dim) [default: 8]."),
    ("perceiver_num_latents", "perceiver: learned latents [default: 16]."),
    ("perceiver_num_layers", "perceiver: self-attention layers over the latents [default: 2]."),
    ("perceiver_heads", "perceiver: attention heads [default: 4]."),
]


def apply_options(func, options):
    for decorator in reversed(options):
        func = decorator(func)
    return func


def _show_guide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from aam_core.guide import CATEGORICAL_GUIDE

    click.echo(CATEGORICAL_GUIDE)
    ctx.exit(0)


#: Split and file flags: cross-validation sets these itself.
SPLIT_AND_FILES = ("table", "metadata", "metadata_column", "val_fraction", "stratify_by")

#: Model and training flags, shared by ``aam train`` and ``aam cv``.
MODEL_AND_TRAINING = [
    *(config_option("data", n, h, **kw) for n, h, kw in DATA if n not in SPLIT_AND_FILES),
    *(config_option("model", n, h, **kw) for n, h, kw in MODEL),
    config_option("model", "classifier", "Classify the target column instead of regressing it.", is_flag=True),
    bool_option("model", "count_prediction", "Predict each ASV's abundance as an auxiliary task."),
    *(click.option("--" + n.replace("_", "-"), n, type=int, default=None, help=h) for n, h in FUSION_OPTIONS),
    click.option("--fusion-option", "fusion_option", multiple=True, metavar="KEY=VALUE", help="An option of a third-party fusion plugin."),
    *(config_option("training", n, h, **kw) for n, h, kw in TRAINING),
    bool_option("training", "amp", "Mixed precision (bfloat16) on CUDA."),
    click.option("--normalize-targets/--no-normalize-targets", default=None, help="Deprecated: use --target-transform minmax / none."),
    click.option("--normalize-targets-by", default=None, help="Deprecated: use --target-transform zscore-category --normalize-by COL."),
    click.option("--log-transform-targets", is_flag=True, default=None, help="Deprecated: use --target-transform log-minmax."),
]

MODEL_AND_TRAINING_NAMES = [
    *(n for n, _, _ in DATA if n not in SPLIT_AND_FILES),
    *(n for n, _, _ in MODEL),
    "classifier",
    "count_prediction",
    *(n for n, _ in FUSION_OPTIONS),
    *(n for n, _, _ in TRAINING),
    "amp",
    "normalize_targets",
    "normalize_targets_by",
    "log_transform_targets",
]

_OPTIONS = [
    click.option("--demo", is_flag=True, help="Train on the embedded demo dataset (oral-age subset)."),
    click.option("--config", "config_file", type=click.Path(), help="JSON run config (flags override it)."),
    click.option("--output-dir", type=click.Path(), help="Where the run's files go.", required=False),
    click.option("--force", is_flag=True, help="Overwrite an output directory that already holds a run."),
    click.option("--train-samples", type=click.Path(), help="File of training sample IDs (replaces the random split)."),
    click.option("--val-samples", type=click.Path(), help="File of validation sample IDs (with --train-samples)."),
    click.option(
        "--categorical-help",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_guide,
        help="Print which fusion to use for which need, and exit.",
    ),
    *(config_option("data", n, h, **kw) for n, h, kw in DATA if n in SPLIT_AND_FILES),
    *MODEL_AND_TRAINING,
]


def model_and_training_options(params: dict) -> dict:
    """The flags of :data:`MODEL_AND_TRAINING` the user gave, as API keywords (consumed from
    ``params``)."""
    for flag in ("classifier", "log_transform_targets"):  # plain flags: absent means "not given"
        if params.get(flag) is False:
            params[flag] = None
    fusion_option = params.pop("fusion_option", ())
    options = given({name: params.pop(name) for name in MODEL_AND_TRAINING_NAMES if name in params})
    options.update(parse_key_values(fusion_option, "--fusion-option"))
    return options


def _train(
    demo: bool, config_file: str | None, force: bool, train_samples: str | None, val_samples: str | None, **params
) -> None:
    """Train a model on a BIOM table and a metadata column."""
    from aam_core.api import train

    options = model_and_training_options(params)
    options.update(given(params))
    if demo:
        from aam_core.data.demo import demo_options

        options = {**demo_options(), **options}
    result = train(config_file, force=force, train_samples=train_samples, val_samples=val_samples, **options)
    click.echo(f"Best epoch {result.best_epoch}; outputs in {result.output_dir}")


command = click.command("train")(apply_options(_train, _OPTIONS))
