"""Output heads: the target, hidden abundances, per-category output scaling, UniFrac coordinates
and masked nucleotides."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aam_core.data.tokens import N_BASES


class TargetHead(nn.Module):
    """Pooled sample vector → ``[B, out_dim]`` (regression values or class logits).

    ``extra`` inputs (the nearest-reference summary, :func:`aam_core.neighbours.neighbour_features`)
    join the normalised pooled vector before the first linear layer: normalised together with it,
    their values would shift with the vector's. A head with extras also learns, per sample, how
    far to trust its reference samples outright: a gate ``g`` read from the same hidden layer
    blends its own output towards their weighted target (the summary's first ``out_dim`` values),
    ``(1 − g)·own + g·theirs`` for regression and the same mixture of the class probabilities
    for a classifier (whose output is then its log). Where the references agree on one target,
    the gate can hand it over exactly, which a hidden layer can only approximate.

    In training the blend sees the head's own output detached: the loss on the blend trains the
    gate, and the own output (:meth:`parts`) has a loss of its own, so the network keeps learning
    the target as it would without the gate instead of leaning on an open gate from the first
    epoch (which left the validation error flat for several epochs). In evaluation nothing is
    detached, so attributions follow both paths."""

    def __init__(self, dim: int, out_dim: int, dropout: float = 0.0, extra: int = 0, *, classifier: bool = False):
        super().__init__()
        self.out_dim, self.classifier = out_dim, classifier
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim + extra, dim), nn.GELU(), nn.Linear(dim, out_dim)
        )
        self.gate = nn.Linear(dim, 1) if extra else None

    def forward(self, pooled: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.parts(pooled, extra)[0]

    def parts(self, pooled: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prediction, and the head's own output before the gate (None without one)."""
        if self.gate is None:
            return self.net(pooled), None
        x = torch.cat([self.net[0](pooled), extra.to(pooled.dtype)], dim=1)
        hidden = self.net[3](self.net[2](self.net[1](x)))
        own, gate = self.net[4](hidden).float(), self.gate(hidden).float()
        mine = own.detach() if self.training else own
        theirs = extra[:, : self.out_dim].float()  # not through bfloat16: handed over exactly
        if not self.classifier:
            return mine + torch.sigmoid(gate) * (theirs - mine), own
        # log((1 − g)·softmax(own) + g·shares), kept in log space: a class no reference has
        # contributes exp(−inf) = 0 to its own term, and the model's share keeps it finite
        mixed = torch.stack([F.logsigmoid(-gate) + torch.log_softmax(mine, dim=1), F.logsigmoid(gate) + torch.log(theirs)])
        return torch.logsumexp(mixed, dim=0), own


class CountHead(nn.Module):
    """Contextual ASV vectors → predicted log relative abundance per ASV ``[B, S]`` (trained on
    the ASVs whose abundance the sample encoder did not see)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, asv: torch.Tensor) -> torch.Tensor:
        return self.net(asv).squeeze(-1)


class ConditionalScaling(nn.Module):
    """A learned scale and bias per category of one column, applied to the target output."""

    def __init__(self, n_categories: int, out_dim: int):
        super().__init__()
        self.scale = nn.Embedding(n_categories, out_dim)
        self.bias = nn.Embedding(n_categories, out_dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, output: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return output * self.scale(codes) + self.bias(codes)


class UniFracHead(nn.Module):
    """Pooled sample vector → coordinates whose Euclidean distances predict UniFrac.

    No squashing: a distance is ``‖z_i − z_j‖``, free to spread over whatever range the true
    distances cover (a sigmoid on top saturated and collapsed in the system AAM replaces)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled.float())


class NucleotideHead(nn.Module):
    """Contextual patch vectors ``[U, P, D]`` → logits of each base of each patch
    ``[U, P, patch_size, N_BASES]`` (masked-nucleotide pretraining)."""

    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        self.patch_size, self.n_bases = patch_size, N_BASES
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, patch_size * N_BASES))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        u, p, _ = patches.shape
        return self.net(patches).view(u, p, self.patch_size, self.n_bases)
