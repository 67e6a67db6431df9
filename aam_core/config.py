"""Run configuration: attrs classes, validated on construction, (de)serialised by one converter.

``config.json`` in every output directory and the copy inside every checkpoint are written by
:func:`unstructure` and read back by :func:`structure`; ``aam train --config`` takes the same format
(any subset of fields).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import validators as v

from aam_core.errors import ConfigError

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=True)


def flag_name(attribute: attrs.Attribute) -> str:
    """The flag a person types for a config or plugin-options field: ``--cross-attn-heads``."""
    return "--" + attribute.name.replace("_", "-")


#: Seeds NumPy and scikit-learn accept.
MAX_SEED = 2**32 - 1


def check_seed(value: int, flag: str = "--seed") -> int:
    """``value`` if NumPy and scikit-learn accept it as a seed, else a :class:`ConfigError`."""
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{flag} must be a whole number from 0 to {MAX_SEED}, got {value}.")
    return value


# Validators for config classes and for plugins' own options classes: errors name the flag.
def positive(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value is not None and not value > 0:  # NaN is not positive
        raise ConfigError(f"{flag_name(attribute)} must be positive, got {value}.")
    if value is not None and math.isinf(value):
        raise ConfigError(f"{flag_name(attribute)} must be a finite number, got {value}.")


def non_negative(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if value is not None and not value >= 0:  # NaN is not >= 0
        raise ConfigError(f"{flag_name(attribute)} must be >= 0, got {value}.")
    if value is not None and math.isinf(value):
        raise ConfigError(f"{flag_name(attribute)} must be a finite number, got {value}.")


def _seed(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    check_seed(value, flag_name(attribute))


def _unit_interval(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{flag_name(attribute)} must be in [0, 1), got {value}.")


def _fraction(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{flag_name(attribute)} must be between 0 and 1, got {value}.")


def split_columns(value: Any) -> list[str]:
    """``'a,b'`` or ``['a', 'b']`` → ``['a', 'b']``."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(c).strip() for c in value if str(c).strip()]


def _help(text: str, group: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the flag's help text and the ``--help`` section it is listed in."""
    return {"help": text, "group": group, **extra}


def _probability(instance, attribute, value):  # noqa: ARG001 - attrs validator signature
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{flag_name(attribute)} must be in [0, 1), got {value}.")


def _optional_fraction(instance, attribute, value):
    if value is not None:
        _fraction(instance, attribute, value)


DATA, MODEL, TRAINING, PRETRAINING = "data", "model", "training", "pretraining"
#: ``aam pretrain``'s loss weights when neither a flag nor its config sets them (``aam train``
#: adds these losses only when asked: its defaults are 0). The UniFrac loss (squared error of
#: distances in [0, 1], ~0.003 once trained) is weighed 20 against the masked-nucleotide
#: cross-entropy (~0.25): on oral-age, 30 epochs at D=64, validation-pair UniFrac R² 0.739
#: against 0.691 at weight 1, nucleotide accuracy 0.909 against 0.914.
PRETRAIN_PENALTIES = {"unifrac_penalty": 20.0, "nuc_penalty": 1.0}
#: ``--best-metric`` choices: regression, classification, or both (``loss``).
BEST_METRICS = ("mae", "rmse", "r2", "loss", "accuracy", "f1", "auc")


@attrs.define
class DataConfig:
    """Where the data is and how it becomes batches."""

    table: str = attrs.field(metadata=_help("BIOM table (HDF5 or JSON) whose feature IDs are ASV sequences.", DATA))
    metadata: str | None = attrs.field(default=None, metadata=_help("Metadata TSV (QIIME 2 conventions).", DATA))
    metadata_column: str | None = attrs.field(default=None, metadata=_help("Target column to predict.", DATA))
    sequences: str | None = attrs.field(
        default=None, metadata=_help("FASTA mapping hashed feature IDs to sequences (dna-sequences.fasta).", DATA)
    )
    categorical_columns: list[str] = attrs.field(
        factory=list,
        converter=split_columns,
        metadata=_help("Comma-separated categorical metadata columns used as model inputs.", DATA),
    )
    max_asvs: int = attrs.field(default=128, validator=positive, metadata=_help("Most abundant ASVs kept per sample.", DATA))
    max_bp: int = attrs.field(default=150, validator=positive, metadata=_help("Nucleotides kept per ASV.", DATA))
    rarefy_depth: int | None = attrs.field(
        default=None, validator=positive, metadata=_help("Rarefy every sample to this many reads first.", DATA)
    )
    val_fraction: float = attrs.field(
        default=0.2, validator=_fraction, metadata=_help("Share of samples held out for validation (model selection).", DATA)
    )
    test_fraction: float | None = attrs.field(
        default=None,
        validator=_optional_fraction,
        metadata=_help("Share of samples held out as a test set that no selection ever sees.", DATA),
    )
    stratify_by: str | None = attrs.field(
        default=None, metadata=_help("Categorical column to stratify the train/validation/test split by.", DATA)
    )
    normalize_by: str | None = attrs.field(
        default=None, metadata=_help("Column whose categories get their own statistics (zscore-category only).", DATA)
    )
    target_units: str | None = attrs.field(
        default=None, metadata=_help("Units of the target, for axis labels (e.g. years).", DATA)
    )
    tree: str | None = attrs.field(
        default=None, metadata=_help("Newick tree over the ASVs: UniFrac distances computed per batch.", DATA)
    )
    unifrac_matrix: str | None = attrs.field(
        default=None, metadata=_help("Precomputed UniFrac matrix (.tsv, .h5 as ssu writes, or .npy + IDs).", DATA)
    )
    unifrac_metric: str = attrs.field(
        default="unweighted",
        validator=v.in_(["unweighted", "weighted-normalized"]),
        metadata=_help("UniFrac metric computed from --tree.", DATA, choices=["unweighted", "weighted-normalized"]),
    )
    prune_missing: bool = attrs.field(
        default=False, metadata=_help("Drop ASVs missing from --tree instead of failing.", DATA)
    )


@attrs.define
class ModelConfig:
    """Shape of the network and which fusion combines sequences with metadata.

    The defaults here and in :class:`TrainConfig` are the recipe measured best on oral-age
    (README, "Where the accuracy comes from"): what ``aam train`` gives without a config."""

    embedding_dim: int = attrs.field(default=128, validator=positive, metadata=_help("Width of every embedding.", MODEL))
    attention_heads: int = attrs.field(default=4, validator=positive, metadata=_help("Attention heads in the encoders.", MODEL))
    attention_layers: int = attrs.field(
        default=2,
        validator=positive,
        metadata=_help("Transformer layers in the sample encoder (and ASV encoder unless --asv-layers).", MODEL),
    )
    asv_layers: int | None = attrs.field(
        default=1, validator=positive, metadata=_help("Transformer layers in the ASV encoder (none given: --attention-layers).", MODEL)
    )
    patch_size: int = attrs.field(
        default=4, validator=positive, metadata=_help("Nucleotides per ASV-encoder token (k-mer patch); 1 = one token per base.", MODEL)
    )
    feedforward_mult: int = attrs.field(
        default=4, validator=positive, metadata=_help("Feed-forward width as a multiple of --embedding-dim.", MODEL)
    )
    dropout: float = attrs.field(default=0.1, validator=_unit_interval, metadata=_help("Dropout in the sample encoder and heads.", MODEL))
    fusion: str = attrs.field(
        default="gmu", metadata=_help("How categorical metadata is fused (see --categorical-help, 'aam plugins').", MODEL)
    )
    fusion_options: dict[str, Any] = attrs.field(factory=dict, metadata={"cli": False})
    classifier: bool = attrs.field(default=False, metadata=_help("Classify the target column instead of regressing it.", MODEL))
    count_prediction: bool = attrs.field(
        default=True, metadata=_help("Predict hidden ASV abundances as an auxiliary task.", MODEL)
    )
    conditional_output_scaling: str | None = attrs.field(
        default=None, metadata=_help("Categorical column with a learned per-category scale and bias on the output.", MODEL)
    )
    neighbours: int = attrs.field(
        default=0,
        validator=non_negative,
        metadata=_help(
            "The target head also reads the targets of each sample's K most similar training samples "
            "(shared ASV sequences, same known categories); 0 = off.",
            MODEL,
        ),
    )
    unknown_head: bool = attrs.field(
        default=True,
        metadata=_help(
            "A separate target head for samples whose categories are all unknown (trained by --category-dropout).", MODEL
        ),
    )

    def __attrs_post_init__(self) -> None:
        if self.embedding_dim % self.attention_heads:
            raise ConfigError(
                f"--embedding-dim {self.embedding_dim} must be divisible by "
                f"--attention-heads {self.attention_heads}."
            )

    @property
    def n_asv_layers(self) -> int:
        return self.asv_layers or self.attention_layers


@attrs.define
class TrainConfig:
    """Optimisation, schedule, devices, the target transform and the auxiliary objectives."""

    epochs: int = attrs.field(default=15, validator=positive, metadata=_help("Maximum epochs.", TRAINING))
    batch_size: int = attrs.field(default=32, validator=positive, metadata=_help("Samples per batch (per device).", TRAINING))
    lr: float = attrs.field(default=1e-3, validator=positive, metadata=_help("Peak learning rate (AdamW, warmup then cosine).", TRAINING))
    categorical_lr: float | None = attrs.field(
        default=None,
        validator=positive,
        metadata=_help("Learning rate of categorical embeddings, fusion and output scaling [default: --lr].", TRAINING),
    )
    weight_decay: float = attrs.field(default=0.01, validator=non_negative, metadata=_help("AdamW weight decay.", TRAINING))
    warmup_fraction: float = attrs.field(
        default=0.05, validator=_unit_interval, metadata=_help("Share of steps spent warming the learning rate up.", TRAINING)
    )
    grad_clip: float = attrs.field(default=1.0, validator=non_negative, metadata=_help("Gradient-norm clip (0 = off).", TRAINING))
    grad_accum: int = attrs.field(default=1, validator=positive, metadata=_help("Batches accumulated per optimizer step.", TRAINING))
    patience: int = attrs.field(
        default=0, validator=non_negative, metadata=_help("Early stopping: epochs without validation improvement (0 = off).", TRAINING)
    )
    seed: int = attrs.field(default=42, validator=_seed, metadata=_help("Seed for the split, initialisation and shuffling.", TRAINING))
    device: str | None = attrs.field(
        default=None, metadata=_help("Force a device (cpu, cuda, cuda:1) [default: CUDA if available].", TRAINING)
    )
    parallel: str = attrs.field(default="single", metadata=_help("Parallel strategy plugin (see 'aam plugins').", TRAINING))
    target_transform: str = attrs.field(default="zscore", metadata=_help("Target transform plugin.", TRAINING))
    count_loss_weight: float = attrs.field(
        default=1.0, validator=non_negative, metadata=_help("Weight of the hidden-abundance prediction loss.", TRAINING)
    )
    count_mask_ratio: float = attrs.field(
        default=0.15,
        validator=_probability,
        metadata=_help("Share of each sample's ASVs whose abundance is hidden and predicted (with --count-prediction).", TRAINING),
    )
    category_dropout: float = attrs.field(
        default=0.5,
        validator=_probability,
        metadata=_help(
            "Category dropout, taken in expectation: every training sample is also predicted with its "
            "categories unknown, and that loss gets this weight, so unseen or missing metadata predicts sensibly.",
            TRAINING,
        ),
    )
    category_prediction_weight: float = attrs.field(
        default=1.0,
        validator=non_negative,
        metadata=_help(
            "Weight of predicting each categorical column from the sample with its categories hidden "
            "(needs --category-dropout > 0): makes the encoder tell the categories apart for the unknown branch.",
            TRAINING,
        ),
    )
    target_loss: str = attrs.field(
        default="mae",
        validator=v.in_(["mse", "mae", "huber"]),
        metadata=_help("Regression loss (mae is what MAE, the reported metric, measures).", TRAINING, choices=["mse", "mae", "huber"]),
    )
    amp: bool = attrs.field(default=True, metadata=_help("Mixed precision (bfloat16) on CUDA.", TRAINING))
    best_metric: str | None = attrs.field(
        default=None,
        validator=v.optional(v.in_(BEST_METRICS)),
        metadata=_help(
            "Validation metric that picks the best epoch and early-stops [default: mae for regression, f1 for classification]; "
            "with an unknown-category head, its category-dropout mix over categories given and hidden.",
            TRAINING,
            choices=list(BEST_METRICS),
        ),
    )
    checkpoint_every: int = attrs.field(
        default=0,
        validator=non_negative,
        metadata=_help("Also save last.pt every N optimizer steps inside an epoch (0 = at epoch ends and every 10 minutes).", TRAINING),
    )
    unifrac_penalty: float = attrs.field(
        default=0.0, validator=non_negative, metadata=_help("Weight of the UniFrac distance loss (needs --tree or --unifrac-matrix).", PRETRAINING)
    )
    nuc_penalty: float = attrs.field(
        default=0.0, validator=non_negative, metadata=_help("Weight of the masked-nucleotide loss.", PRETRAINING)
    )
    nuc_mask_ratio: float = attrs.field(
        default=0.15, validator=_probability, metadata=_help("Share of each ASV's patches masked for the nucleotide loss.", PRETRAINING)
    )
    pretrained_encoder: str | None = attrs.field(
        default=None, metadata=_help("Start from the encoder of an 'aam pretrain' checkpoint.", PRETRAINING)
    )
    freeze_base: bool = attrs.field(
        default=False, metadata=_help("Keep the pretrained ASV encoder fixed (its embeddings are cached).", PRETRAINING)
    )
    loader_workers: int | None = attrs.field(
        default=None,
        validator=non_negative,
        metadata=_help(
            "Processes building batches ahead of the training step [default: up to 4 per GPU process on CUDA, 0 on CPU].",
            TRAINING,
        ),
    )
    fsdp_sharded_checkpoint: bool = attrs.field(
        default=False,
        metadata=_help(
            "With --parallel fsdp, also save each process's shard (torch.distributed.checkpoint) in checkpoints/sharded/ beside last.pt.",
            TRAINING,
            strategy_option=True,
        ),
    )
    #: Options of the parallel strategy plugin (``--strategy-option KEY=VALUE``); a strategy's own
    #: flag (``--fsdp-sharded-checkpoint``) reaches it too.
    strategy_options: dict[str, Any] = attrs.field(factory=dict, metadata={"cli": False})


@attrs.define
class RunConfig:
    """Everything a run needs; saved as ``config.json`` and inside each checkpoint."""

    data: DataConfig
    model: ModelConfig = attrs.field(factory=ModelConfig)
    training: TrainConfig = attrs.field(factory=TrainConfig)
    output_dir: str | None = None
    #: ``train`` (a target column) or ``pretrain`` (UniFrac + masked nucleotides, no labels).
    task: str = attrs.field(default="train", validator=v.in_(["train", "pretrain"]))


def _first_config_error(exc: BaseException) -> ConfigError | None:
    if isinstance(exc, ConfigError):
        return exc
    for inner in getattr(exc, "exceptions", []):
        found = _first_config_error(inner)
        if found is not None:
            return found
    return None


def _error_text(exc: Exception, what: str) -> str:
    own = _first_config_error(exc)
    if own is not None:
        return str(own)
    if isinstance(exc, cattrs.BaseValidationError):
        messages = []
        for message in cattrs.transform_error(exc):
            text, _, where = message.rpartition(" @ $.")
            name = where.rsplit(".", 1)[-1]
            messages.append(f"--{name.replace('_', '-')}: {text}" if name and text else message)
        return f"Invalid {what}: " + "; ".join(messages)
    return f"Invalid {what}: {exc}"


def structure(data: dict[str, Any], cls: type[T], what: str = "configuration") -> T:
    """Build ``cls`` from a dict; every problem becomes a one-line :class:`ConfigError`."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(_error_text(exc, what)) from None


def unstructure(obj: Any) -> dict[str, Any]:
    return converter.unstructure(obj)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(unstructure(config), indent=2, sort_keys=True) + "\n")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw JSON of a config file; it may hold only some sections and fields (a recipe such
    as ``examples/oral-age-recommended.json`` leaves out the data paths)."""
    if Path(path).is_dir():
        raise ConfigError(f"--config {path} is a directory; give the run's config.json inside it.")
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a JSON object.")
    return data


def load_config(path: str | Path) -> RunConfig:
    """A complete run config (a run's ``config.json``)."""
    return structure(read_config_file(path), RunConfig, f"config file {path}")


def structure_options(spec: Any, values: dict[str, Any]) -> Any:
    """A plugin's options object from a dict, or None for a plugin without options."""
    if spec.options is None:
        if values:
            flags = ", ".join("--" + k.replace("_", "-") for k in sorted(values))
            raise ConfigError(f"{flags} does not apply to {spec.family} '{spec.name}'.")
        return None
    allowed = {f.name for f in attrs.fields(spec.options)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConfigError(f"{flags} does not apply to {spec.family} '{spec.name}'.")
    return structure(values, spec.options, f"options for {spec.family} '{spec.name}'")
