"""Build the model for a config: one function shared by training and ``load_model``."""

from __future__ import annotations

from aam_core.config import RunConfig
from aam_core.model.aam import AAMModel
from aam_core.plugins import get_plugin


def build_model(
    config: RunConfig, *, out_dim: int, category_sizes: list[int], scaling: tuple[int, int] | None
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
        out_dim=out_dim,
        category_sizes=category_sizes,
        fusion=fusion,
        scaling=scaling,
    )
