"""Optimizer and learning-rate schedule: AdamW, linear warmup then cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, conditioning: list[nn.Parameter], categorical_lr: float | None
) -> torch.optim.Optimizer:
    """Two parameter groups: ``main`` at ``lr`` and ``categorical`` (embeddings, fusion, output
    scaling) at ``categorical_lr`` (``lr`` when not given)."""
    ids = {id(p) for p in conditioning}
    main = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    cond = [p for p in conditioning if p.requires_grad]
    groups = [{"params": main, "lr": lr, "name": "main"}]
    if cond:
        groups.append({"params": cond, "lr": categorical_lr or lr, "name": "categorical"})
    return torch.optim.AdamW(groups, weight_decay=weight_decay)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    """Linear warmup over ``warmup_fraction`` of the steps, then cosine decay to 1% of each
    group's learning rate."""
    warmup = max(1, int(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
