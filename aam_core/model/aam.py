"""The composed model: ASV encoder → sample encoder → fusion/pooling → heads.

Which heads exist follows the run: the target head for a supervised run, the hidden-abundance
head with ``--count-prediction`` (and a non-zero weight), the UniFrac head with
``--unifrac-penalty``, the nucleotide head with ``--nuc-penalty``, a second target head for
samples with every category unknown with ``--unknown-head`` and category dropout, and with
``--category-prediction-weight`` one linear head per categorical column that reads its code from
the vector the unknown head sees. With ``--neighbours`` both target heads also read each
sample's summary of its nearest training samples (``aam_core.neighbours``). A head whose loss is
off is not built at all, and a part no loss reaches is frozen (``requires_grad`` off): the count
head when no abundance is ever hidden (``--count-mask-ratio 0``), and the sample-level path
(sample encoder, pooling, the ASV encoder's readout) when only masked nucleotides are learned. So
every trainable parameter gets a gradient at every step, which DistributedDataParallel requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from aam_core.config import ModelConfig
from aam_core.data.batching import Batch
from aam_core.interfaces import Fusion
from aam_core.model.asv_encoder import ASVEncoder
from aam_core.model.categorical import CategoricalEmbedder
from aam_core.model.heads import (
    ConditionalScaling,
    CountHead,
    NucleotideHead,
    TargetHead,
    UniFracHead,
)
from aam_core.model.layers import AttentionPooling
from aam_core.model.sample_encoder import SampleEncoder

#: The parts a pretrained encoder carries into fine-tuning.
ENCODER_MODULES = ("asv_encoder", "sample_encoder", "pool")


@attrs.frozen
class Heads:
    """Which optional heads a model has (decided by the run's task and loss weights)."""

    out_dim: int | None = None  # target head outputs; None: no target head (pretraining)
    counts: bool = False  # hidden-abundance head
    maskable_counts: bool = False  # the sample encoder can hide abundances
    unifrac: bool = False
    nucleotides: bool = False
    unknown: bool = False  # a target head of its own for samples with every category unknown
    category_logits: bool = False  # predict each categorical column from the category-free sample vector
    neighbours: int = 0  # width of the nearest-reference summary the target heads also read (0: none)


@attrs.define
class ModelOutput:
    prediction: torch.Tensor | None  # [B, out_dim], model units (or logits); None without a target head
    embedding: torch.Tensor  # [B, D], pooled sample vector after fusion
    counts: torch.Tensor | None  # [B, S] predicted log relative abundance, or None
    extras: dict[str, torch.Tensor]  # fusion internals (gates, attention weights)
    unifrac: torch.Tensor | None = None  # [B, D] coordinates whose distances predict UniFrac
    nucleotides: torch.Tensor | None = None  # [U, P, patch, bases] logits of each patch's bases
    #: [B, out_dim]: the same samples with every category unknown (``batch.unknown_branch``)
    unknown_prediction: torch.Tensor | None = None
    #: per categorical column [B, n_codes]: logits of its code from the unknown branch's vector
    category_logits: list[torch.Tensor] | None = None
    #: [B, out_dim]: the target heads' own outputs before their gate towards the reference
    #: samples (``--neighbours``), for ``prediction`` and ``unknown_prediction``: trained by a loss
    #: of their own (:class:`~aam_core.model.heads.TargetHead`)
    own_prediction: torch.Tensor | None = None
    unknown_own: torch.Tensor | None = None


class AAMModel(nn.Module):
    """``forward(batch)`` → :class:`ModelOutput`.

    The encoder (``asv_encoder`` + ``sample_encoder`` + ``pool``) is separate from the
    conditioning and heads so a pretrained encoder can be loaded and frozen.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        max_bp: int,
        heads: Heads,
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
            d,
            config.attention_heads,
            config.attention_layers,
            config.feedforward_mult,
            config.dropout,
            maskable=heads.maskable_counts,
        )
        self.categorical = CategoricalEmbedder(category_sizes, d) if category_sizes else None
        self.fusion = fusion if category_sizes else None
        uses_pool = self.fusion is None or getattr(self.fusion, "uses_pool", True)
        self.pool = AttentionPooling(d) if uses_pool else None
        self.neighbours = heads.neighbours if heads.out_dim else 0
        head = {"classifier": config.classifier}
        self.target_head = TargetHead(d, heads.out_dim, config.dropout, self.neighbours, **head) if heads.out_dim else None
        # Samples with every category unknown get their own head: the main head is free to lean
        # on the categories without pulling the no-metadata predictions along.
        self.unknown_head = None
        if heads.unknown and category_sizes:
            self.unknown_head = TargetHead(d, heads.out_dim, config.dropout, self.neighbours, **head)
        self.category_heads = None
        if heads.category_logits and category_sizes:
            self.category_heads = nn.ModuleList(nn.Linear(d, size) for size in category_sizes)
        self.count_head = CountHead(d) if heads.counts else None
        self.unifrac_head = UniFracHead(d) if heads.unifrac else None
        self.nucleotide_head = NucleotideHead(d, config.patch_size) if heads.nucleotides else None
        self.n_columns = len(category_sizes)
        # scaling = (column index in batch.categories, number of codes of that column)
        self.scaling_column = None if scaling is None else scaling[0]
        self.output_scaling = None
        if scaling is not None and heads.out_dim:
            self.output_scaling = ConditionalScaling(scaling[1], heads.out_dim)
        for module in self._unreached(heads):
            module.requires_grad_(False)

    def _unreached(self, heads: Heads) -> list[nn.Module]:
        """Modules no loss of this run reaches (kept, so checkpoints keep one layout)."""
        out: list[nn.Module] = []
        if self.count_head is not None and not heads.maskable_counts:
            out.append(self.count_head)  # the count loss reads hidden abundances only
        if heads.out_dim is None and not heads.unifrac and not heads.counts:
            out += [m for m in (self.sample_encoder, self.pool, self.asv_encoder.readout) if m is not None]
        return out

    def conditioning_parameters(self) -> list[nn.Parameter]:
        """Categorical embeddings, fusion and output scaling: the ``--categorical-lr`` group."""
        modules = [self.categorical, self.fusion, self.output_scaling]
        return [p for m in modules if m is not None for p in m.parameters()]

    def encoder_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Named parameters of the part a pretrained encoder provides."""
        for name, param in self.named_parameters():
            if name.split(".", 1)[0] in ENCODER_MODULES:
                yield name, param

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Contextual ASV representations ``[B, S, D]`` (each unique ASV encoded once) and the
        nucleotide logits of the batch's ASVs when the model has that head."""
        nucleotides = None
        if batch.asv_embeddings is not None:
            asv = batch.asv_embeddings
        else:
            patches = self.asv_encoder.patches(batch.asv_tokens, full=batch.full_asvs)
            asv = self.asv_encoder.readout_of(patches)
            if self.nucleotide_head is not None:
                nucleotides = self.nucleotide_head(patches)
        h = self.sample_encoder(
            F.embedding(batch.asv_index, asv), batch.counts, batch.mask, batch.totals, batch.count_mask, full=batch.full_samples
        )
        return h, nucleotides

    def pooled(self, h: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.fusion is not None:
            tokens = self.categorical(batch.categories[:, : self.n_columns])
            return self.fusion(h, batch.mask, tokens, self.pool)
        return self.pool(h, batch.mask), {}

    def _references(self, batch: Batch, branch: int) -> torch.Tensor | None:
        """The nearest-reference summary of ``branch`` (0: among samples sharing the known
        categories, 1: among all) when the model reads one."""
        if not self.neighbours:
            return None
        if batch.neighbours is None:
            raise ValueError("this model reads nearest reference samples; the batch carries none")
        return batch.neighbours[:, branch]

    def _predict(
        self, pooled: torch.Tensor, categories: torch.Tensor, references: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prediction and the heads' own output before the gate (None without neighbours)."""
        outputs = self.target_head.parts(pooled, references)
        if self.unknown_head is not None:  # per row, without asking the device whether any is unknown
            unknown = (categories[:, : self.n_columns] == 0).all(dim=1, keepdim=True)
            blind = self.unknown_head.parts(pooled, references)
            outputs = tuple(None if a is None else torch.where(unknown, b, a) for a, b in zip(outputs, blind, strict=True))
        if self.output_scaling is not None:
            codes = categories[:, self.scaling_column]
            outputs = tuple(None if out is None else self.output_scaling(out, codes) for out in outputs)
        return outputs

    def forward(self, batch: Batch) -> ModelOutput:
        h, nucleotides = self.encode(batch)
        pooled, extras = self.pooled(h, batch)
        prediction = unknown = logits = own = unknown_own = None
        if self.target_head is not None:
            prediction, own = self._predict(pooled, batch.categories, self._references(batch, 0))
            if batch.unknown_branch and self.categorical is not None:
                # The encoding is shared: only fusion and head run again, on the unknown rows.
                hidden = attrs.evolve(batch, categories=torch.zeros_like(batch.categories))
                free = self.pooled(h, hidden)[0]
                unknown, unknown_own = self._predict(free, hidden.categories, self._references(batch, 1))
                if self.category_heads is not None:
                    logits = [head(free) for head in self.category_heads]
        return ModelOutput(
            prediction=prediction,
            embedding=pooled,
            counts=self.count_head(h) if self.count_head is not None else None,
            extras=extras,
            unifrac=self.unifrac_head(pooled) if self.unifrac_head is not None else None,
            nucleotides=nucleotides,
            unknown_prediction=unknown,
            category_logits=logits,
            own_prediction=own,
            unknown_own=unknown_own,
        )


def forward_batches(
    model: nn.Module, batches: Iterator[Batch], device: torch.device, autocast: Any
) -> Iterator[tuple[Batch, ModelOutput]]:
    """Each batch moved to ``device`` with the model's output on it (call under no_grad)."""
    for batch in batches:
        batch = batch.to(device)
        with autocast():
            out = model(batch)
        yield batch, out
