"""``perceiver``: a few learned latents read the ASVs and the metadata, then think among themselves.

``--perceiver-num-latents`` N learned vectors cross-attend once to the concatenation of the ASV
tokens ``[B, S, D]`` and the metadata tokens ``[B, K, D]`` (padded ASVs are excluded by a boolean
key mask; metadata tokens are always valid, so no row is ever fully masked and nothing is NaN,
even for a sample that is all padding). Then ``--perceiver-num-layers`` pre-norm transformer layers
run over the latents alone, and their mean is the sample vector. The model's ``pool`` is not used:
the latent bottleneck replaces it.

Cost is linear in S: the cross-attention scores are ``N × (S + K)`` and the key/value projections
touch each input token once, ``O(B·(S+K)·D·(D+N))``; the latent layers cost ``O(B·N·D·(N+D))`` per
layer, independent of S. Sample-level self-attention over ASVs would be ``O(S²)``.

Attention runs through ``scaled_dot_product_attention``. ``extras["attention"]`` holds the
cross-attention weights ``[B, heads, N, S + K]`` (the last K entries are the metadata tokens; padded
ASVs get 0), recomputed without gradient for inspection — ``N·(S+K)`` per head, small beside the
projections. :meth:`PerceiverFusion.summarize` reports ``attention/<column>``, the share of the
latents' attention each metadata column receives, and ``attention_asvs``, the share the ASVs get.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from aam_core import hookimpl
from aam_core.config import non_negative, positive
from aam_core.errors import ConfigError
from aam_core.interfaces import Fusion, FusionOutput, Pool
from aam_core.specs import FusionSpec


@attrs.frozen
class PerceiverOptions:
    """Options of the ``perceiver`` fusion."""

    #: Learned latent vectors that read the inputs.
    perceiver_num_latents: int = attrs.field(default=16, validator=positive)
    #: Self-attention layers over the latents after the cross-attention (0 allowed).
    perceiver_num_layers: int = attrs.field(default=2, validator=non_negative)
    #: Attention heads; must divide ``--embedding-dim``.
    perceiver_heads: int = attrs.field(default=4, validator=positive)


class _Attention(nn.Module):
    """Multi-head attention of ``x`` over ``context`` through SDPA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = self._split(self.query(x))
        k, v = (self._split(t) for t in self.key_value(context).chunk(2, dim=-1))
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        weights = None
        if need_weights:
            with torch.no_grad():
                scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
                if attn_mask is not None:
                    scores = scores.masked_fill(~attn_mask, float("-inf"))
                weights = torch.softmax(scores.float(), dim=-1)
        b, _, n, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, n, -1)), weights


class _Block(nn.Module):
    """Pre-norm attention plus feed-forward; cross-attention when given a context."""

    def __init__(self, dim: int, heads: int, cross: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim) if cross else None
        self.attn = _Attention(dim, heads)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm(x)
        ctx = h if self.norm_context is None else self.norm_context(context)
        attended, weights = self.attn(h, ctx, key_mask, need_weights)
        x = x + attended
        return x + self.ff(self.norm_ff(x)), weights


class PerceiverFusion(Fusion):
    """N latents cross-attend to [ASVs; metadata], then self-attend; their mean is the sample."""

    uses_pool = False  # the latent bottleneck replaces the model's pooling
    #: ``attention [heads, latents, S]`` over the sample's ASVs; ``metadata_attention
    #: [heads, latents, K]`` over its category tokens (one sample, batch axis removed).
    extras_axes = {"attention": 2, "metadata_attention": None}

    def __init__(self, dim: int, n_columns: int, options: PerceiverOptions | None = None):
        super().__init__()
        del n_columns  # metadata tokens are just more inputs
        opts = options or PerceiverOptions()
        if dim % opts.perceiver_heads:
            raise ConfigError(
                f"--perceiver-heads {opts.perceiver_heads} must divide --embedding-dim {dim}."
            )
        self.latents = nn.Parameter(torch.randn(opts.perceiver_num_latents, dim) * 0.02)
        self.cross = _Block(dim, opts.perceiver_heads, cross=True)
        self.layers = nn.ModuleList(
            _Block(dim, opts.perceiver_heads) for _ in range(opts.perceiver_num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, asv: torch.Tensor, mask: torch.Tensor, cat: torch.Tensor, pool: Pool
    ) -> FusionOutput:
        del pool  # None: uses_pool is False
        mask = mask.bool()
        b = asv.shape[0]
        inputs = torch.cat([asv.masked_fill(~mask.unsqueeze(-1), 0.0), cat], dim=1)
        key_mask = torch.cat([mask, mask.new_ones(b, cat.shape[1])], dim=1)  # [B, S + K]
        # A copy, not an expanded view: under no_grad a view of a parameter stays a leaf that
        # requires grad, which trips torch's module tracker (FlopCounterMode).
        latents = self.latents.repeat(b, 1, 1)
        # The weights are only for inspection: not computed while training.
        latents, weights = self.cross(latents, inputs, key_mask, need_weights=not self.training)
        for layer in self.layers:
            latents, _ = layer(latents)
        extras = {}
        if weights is not None:
            n_asv = asv.shape[1]
            extras = {"attention": weights[..., :n_asv], "metadata_attention": weights[..., n_asv:]}
        return FusionOutput(self.norm(latents).mean(dim=1), extras)

    def summarize(
        self, extras: dict[str, torch.Tensor], columns: Sequence[str]
    ) -> dict[str, float]:
        """Share of the latents' attention on each metadata column (``attention/<column>``) and
        on the ASVs together (``attention_asvs``), averaged over batch, heads and latents."""
        if "attention" not in extras:  # training mode: no weights were computed
            return {}
        asvs = extras["attention"].detach().float().mean(dim=(0, 1, 2))  # [S]
        metadata = extras["metadata_attention"].detach().float().mean(dim=(0, 1, 2))  # [K]
        out = {"attention_asvs": float(asvs.sum())}
        out.update({f"attention/{name}": float(metadata[i]) for i, name in enumerate(columns)})
        return out


@hookimpl
def aam_fusions():
    """The perceiver-style latent bottleneck."""
    return [
        FusionSpec(
            name="perceiver",
            need="many ASVs or many metadata tokens",
            hint="[--perceiver-num-latents 16]\n(cost linear in the number of ASVs)",
            factory=PerceiverFusion,
            description="Learned latents cross-attend to ASVs and category tokens; linear in ASVs.",
            options=PerceiverOptions,
        )
    ]
