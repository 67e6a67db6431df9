"""The composed model: ASV encoder → sample encoder → fusion/pooling → heads."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from aam_core.config import ModelConfig
from aam_core.data.batching import Batch
from aam_core.interfaces import Fusion
from aam_core.model.asv_encoder import ASVEncoder
from aam_core.model.categorical import CategoricalEmbedder
from aam_core.model.heads import ConditionalScaling, CountHead, TargetHead
from aam_core.model.layers import AttentionPooling
from aam_core.model.sample_encoder import SampleEncoder


@attrs.define
class ModelOutput:
    prediction: torch.Tensor  # [B, out_dim], model units (or logits)
    embedding: torch.Tensor  # [B, D], pooled sample vector after fusion
    counts: torch.Tensor | None  # [B, S] predicted log relative abundance, or None
    extras: dict[str, torch.Tensor]  # fusion internals (gates, attention weights)


class AAMModel(nn.Module):
    """``forward(batch)`` → :class:`ModelOutput`.

    The encoder (``asv_encoder`` + ``sample_encoder``) is separate from the conditioning and heads
    so a pretrained encoder can be loaded and frozen.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        max_bp: int,
        out_dim: int,
        category_sizes: list[int],
        fusion: Fusion | None,
        scaling: tuple[int, int] | None = None,
    ):
        super().__init__()
        d = config.embedding_dim
        self.asv_encoder = ASVEncoder(
            d,
            config.attention_heads,
            config.n_asv_layers,
            max_bp,
            config.patch_size,
            config.feedforward_mult,
        )
        self.sample_encoder = SampleEncoder(
            d, config.attention_heads, config.attention_layers, config.feedforward_mult, config.dropout
        )
        self.pool = AttentionPooling(d)
        self.categorical = CategoricalEmbedder(category_sizes, d) if category_sizes else None
        self.fusion = fusion if category_sizes else None
        self.target_head = TargetHead(d, out_dim, config.dropout)
        self.count_head = CountHead(d) if config.count_prediction else None
        self.n_columns = len(category_sizes)
        # scaling = (column index in batch.categories, number of codes of that column)
        self.scaling_column = None if scaling is None else scaling[0]
        self.output_scaling = None if scaling is None else ConditionalScaling(scaling[1], out_dim)

    def conditioning_parameters(self) -> list[nn.Parameter]:
        """Categorical embeddings, fusion and output scaling: the ``--categorical-lr`` group."""
        modules = [self.categorical, self.fusion, self.output_scaling]
        return [p for m in modules if m is not None for p in m.parameters()]

    def encode(self, batch: Batch) -> torch.Tensor:
        """Contextual ASV representations ``[B, S, D]``; each unique ASV is encoded once."""
        asv = self.asv_encoder(batch.asv_tokens)
        return self.sample_encoder(asv[batch.asv_index], batch.counts, batch.mask)

    def forward(self, batch: Batch) -> ModelOutput:
        h = self.encode(batch)
        extras: dict[str, torch.Tensor] = {}
        if self.fusion is not None:
            tokens = self.categorical(batch.categories[:, : self.n_columns])
            pooled, extras = self.fusion(h, batch.mask, tokens, self.pool)
        else:
            pooled = self.pool(h, batch.mask)
        prediction = self.target_head(pooled)
        if self.output_scaling is not None:
            prediction = self.output_scaling(prediction, batch.categories[:, self.scaling_column])
        counts = self.count_head(h) if self.count_head is not None else None
        return ModelOutput(prediction=prediction, embedding=pooled, counts=counts, extras=extras)
