"""Build the model for a config: one function shared by training, pretraining and ``load_model``."""

from __future__ import annotations

from aam_core.config import RunConfig
from aam_core.model.aam import AAMModel, Heads
from aam_core.neighbours import feature_width
from aam_core.plugins import get_plugin


def heads_for(config: RunConfig, out_dim: int | None) -> Heads:
    """The heads a run of ``config`` trains: a head whose loss weight is zero is not built."""
    training = config.training
    supervised = config.task == "train"
    counts = supervised and config.model.count_prediction and training.count_loss_weight > 0
    return Heads(
        out_dim=out_dim if supervised else None,
        counts=counts,
        maskable_counts=counts and training.count_mask_ratio > 0,
        unifrac=training.unifrac_penalty > 0,
        nucleotides=training.nuc_penalty > 0,
        unknown=supervised and config.model.unknown_head and training.category_dropout > 0,
        category_logits=supervised and training.category_dropout > 0 and training.category_prediction_weight > 0,
        neighbours=feature_width(out_dim) if supervised and out_dim and config.model.neighbours else 0,
    )


def build_model(
    config: RunConfig, *, out_dim: int | None, category_sizes: list[int], scaling: tuple[int, int] | None
) -> AAMModel:
    """The composed model; the fusion comes from its plugin with its own options."""
    fusion = None
    if category_sizes:
        spec = get_plugin("fusion", config.model.fusion)
        options = spec.make_options(config.model.fusion_options)
        fusion = spec.factory(dim=config.model.embedding_dim, n_columns=len(category_sizes), options=options)
    return AAMModel(
        config.model,
        max_bp=config.data.max_bp,
        heads=heads_for(config, out_dim),
        category_sizes=category_sizes,
        fusion=fusion,
        scaling=scaling,
    )
