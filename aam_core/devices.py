"""Choosing the torch device a process computes on."""

from __future__ import annotations

import torch

from aam_core.errors import ConfigError


def pick_device(device: str | None = None) -> torch.device:
    """``device`` as given (``cpu``, ``cuda``, ``cuda:1``), else CUDA when available, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device '{device}' is not a device torch knows.") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for CUDA, but no CUDA device is available.")
    return chosen
