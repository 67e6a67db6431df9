"""The losses a task combines: target, hidden abundances, categories read from the microbes,
UniFrac distances, masked nucleotides."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TARGET_LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}


def target_loss(prediction: torch.Tensor, target: torch.Tensor, classifier: bool, kind: str) -> torch.Tensor:
    if classifier:
        return F.cross_entropy(prediction.float(), target, ignore_index=-1)
    return TARGET_LOSSES[kind](prediction[:, 0].float(), target.float())


def hidden_count_loss(
    predicted: torch.Tensor, counts: torch.Tensor, totals: torch.Tensor, hidden: torch.Tensor
) -> torch.Tensor:
    """Squared error of the predicted log relative abundance (of the sample's full read count)
    on the hidden ASVs only — the visible ones would be an identity task."""
    truth = torch.log(counts.float().clamp_min(1.0) / totals.float()[:, None].clamp_min(1.0))
    err = (predicted.float() - truth) ** 2
    weight = hidden.float()
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


def category_loss(logits: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each categorical column's code (``codes[:, i]``, 0 = unknown, not scored)
    summed over the columns, each averaged over its known samples (zero when none is known)."""
    total = torch.zeros((), device=codes.device)
    for column, scores in enumerate(logits):
        truth = codes[:, column]
        summed = F.cross_entropy(scores.float(), truth, ignore_index=0, reduction="sum")
        total = total + summed / (truth != 0).sum().clamp_min(1)
    return total


def pairwise_distances(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances ``[A, B]`` between the rows of ``a`` and of ``b`` (``a`` itself when
    None), with a gradient that stays finite at 0."""
    b = a if b is None else b
    diff = a[:, None, :] - b[None, :, :]
    return torch.sqrt((diff * diff).sum(-1) + 1e-12)


def unifrac_pairs(z: torch.Tensor, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true distances of every pair ``i < j`` (the diagonal and the mirrored half
    excluded)."""
    b = z.shape[0]
    i, j = torch.triu_indices(b, b, offset=1, device=z.device)
    return pairwise_distances(z.float())[i, j], distances.float()[i, j]


def unifrac_loss(z: torch.Tensor, distances: torch.Tensor, *, offset: int = 0, processes: int = 1) -> torch.Tensor:
    """Mean squared error between predicted and exact UniFrac over every pair of the ``G``
    samples of ``z [G, D]`` (zero with fewer than two samples).

    ``distances [B, G]`` holds the rows of samples ``offset .. offset + B`` of ``z``: with several
    processes, ``z`` is every process's embeddings gathered (with gradient) and each process adds
    the pairs of its own rows, each pair counted from both ends (the mean over the ``G(G-1)``
    ordered pairs equals the mean over ``i < j``). Scaled by ``processes`` because the strategy
    averages gradients over processes: the summed per-process parts are then exactly the loss
    of one process holding all ``G`` samples, and so are the gradients."""
    g, b = z.shape[0], distances.shape[0]
    if g < 2:
        return z.sum() * 0.0
    z = z.float()
    predicted = pairwise_distances(z[offset : offset + b], z)
    itself = torch.arange(b, device=z.device)[:, None] + offset == torch.arange(g, device=z.device)[None, :]
    error = ((predicted - distances.float()) ** 2).masked_fill(itself, 0.0)
    return error.sum() * (processes / (g * (g - 1)))


def nucleotide_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy over the masked bases, and the (correct, masked) counts for the accuracy.

    ``logits [U, P, patch, bases]`` cover the padded length ``P·patch``; ``target [U, L]`` holds
    the hidden base or -1. No host synchronisation: empty masks give a zero loss."""
    u, p, patch, bases = logits.shape
    flat = logits.reshape(u, p * patch, bases)[:, : target.shape[1]].reshape(-1, bases).float()
    truth = target.reshape(-1)
    weight = (truth >= 0).float()
    ce = F.cross_entropy(flat, truth.clamp_min(0), reduction="none")
    total = weight.sum()
    loss = (ce * weight).sum() / total.clamp_min(1.0)
    correct = ((flat.argmax(-1) == truth).float() * weight).sum()
    return loss, correct.detach(), total.detach()
