"""Checkpoints: the model's weights plus everything needed to rebuild it and read its output.

A checkpoint holds the full run config, the category vocabularies, the class labels, the fitted
target transform's name and state, and the fusion plugin's name. Files are written to a temporary
name and renamed, so an interrupted save never leaves a truncated checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from aam_core.errors import CheckpointError
from aam_core.files import write_atomic

FORMAT = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    return write_atomic(path, lambda tmp: torch.save({"format": FORMAT, **payload}, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on foreign or truncated files
        raise CheckpointError(f"{path} is not an AAM checkpoint: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an AAM checkpoint (format {FORMAT}).")
    return payload
