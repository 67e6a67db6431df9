"""The checkpoint file: a versioned, atomically written dictionary of plain types and tensors.

Every checkpoint holds ``format`` (this module's :data:`FORMAT`), ``kind`` (``train`` or
``pretrain``), the AAM version that wrote it, the full run config, the model weights, the epoch
and metrics, and what the task needs to read its inputs and outputs (category vocabularies,
classes, the fitted target transform, and for a ``--neighbours`` model its reference samples:
their ASV sets, categories and targets). ``last.pt`` also holds ``training_state`` — optimizer,
scheduler, RNG and loop state — so a run resumes exactly; ``best.pt`` holds None there.

Writing: a temporary file in the same directory, flushed and fsynced, renamed over the target,
then the directory fsynced; a kill at any moment leaves either the old file or the new one.
Reading: ``torch.load(weights_only=True)``, so no pickled code ever runs. Older formats are
migrated step by step (:data:`MIGRATIONS`); a newer format, or keys this version does not know,
are a clear error rather than a silent misread.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aam_core.errors import CheckpointError
from aam_core.files import write_atomic

FORMAT = 6
KINDS = ("train", "pretrain")

#: Every key a checkpoint of this format may hold.
KEYS = frozenset(
    {
        "format",
        "kind",
        "aam_version",
        "config",
        "categories",
        "classes",
        "transform",
        "model_state",
        "epoch",
        "metrics",
        "training_state",
        "references",
    }
)
REQUIRED = frozenset({"format", "kind", "config", "model_state"})


def _config_copy(config: dict[str, Any]) -> dict[str, Any]:
    """The stored config with each section copied, so a migration edits its own copy."""
    return {section: dict(values) if isinstance(values, dict) else values for section, values in config.items()}


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (AAM 0.1): supervised only, six nucleotide tokens, an ``out_dim`` config field
    and no training state. The base embedding gains the mask token's row (zeros: a format-1
    model never saw a mask) and the dead ``out_dim`` field goes."""
    payload = dict(payload)
    payload["kind"] = "train"
    payload["training_state"] = None
    state = dict(payload["model_state"])
    key = "asv_encoder.base_embedding.weight"
    if key in state and state[key].shape[0] == 6:
        weight = state[key]
        state[key] = torch.cat([weight, weight.new_zeros(1, weight.shape[1])])
    payload["model_state"] = state
    config = _config_copy(payload["config"])
    model = config.get("model", {})
    model.pop("out_dim", None)
    payload["config"] = config
    payload["format"] = 2
    return payload


def _next_with_default(payload: dict[str, Any], section: str, key: str, value: Any) -> dict[str, Any]:
    """``payload`` one format on, its config given ``section.key = value`` where it has none."""
    config = _config_copy(payload["config"])
    config.setdefault(section, {}).setdefault(key, value)
    return {**payload, "config": config, "format": payload["format"] + 1}


def _v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 2 predates the separate head for samples with every category unknown: such a model
    predicts them with its main head, so its config says ``unknown_head`` off."""
    return _next_with_default(payload, "model", "unknown_head", False)


def _v3_to_v4(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 3 predates the heads that read each category from the sample with its categories
    hidden: its config says ``category_prediction_weight`` 0, so none is built."""
    return _next_with_default(payload, "training", "category_prediction_weight", 0.0)


def _v4_to_v5(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 4 predates ``--neighbours``: its model reads no reference samples."""
    return {**_next_with_default(payload, "model", "neighbours", 0), "references": None}


#: The gate bias a migrated head gets: ``sigmoid(-1e4)`` is exactly 0 in float32.
_CLOSED_GATE = -1.0e4


def _v5_to_v6(payload: dict[str, Any]) -> dict[str, Any]:
    """Format 5's ``--neighbours`` heads read no disagreement of the references and had no gate
    towards their target. Migrated, each target head ignores the new input (a zero weight column,
    the summary's last) and its gate is shut (zero weights, a bias whose sigmoid is exactly 0),
    so it predicts what it did. Its optimizer state no longer fits the head, so a format-5
    ``last.pt`` of such a model keeps no training state: it cannot be resumed."""
    payload = {**payload, "format": 6}
    if not payload["config"].get("model", {}).get("neighbours"):
        return payload
    state = dict(payload["model_state"])
    for head in ("target_head", "unknown_head"):
        key = f"{head}.net.2.weight"
        if key not in state:
            continue
        weight = state[key]
        state[key] = torch.cat([weight, weight.new_zeros(weight.shape[0], 1)], dim=1)
        state[f"{head}.gate.weight"] = weight.new_zeros(1, weight.shape[0])
        state[f"{head}.gate.bias"] = weight.new_full((1,), _CLOSED_GATE)
    payload["model_state"] = state
    payload["training_state"] = None
    return payload


#: ``from_format → function`` turning a payload of that format into the next one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
}


def _write(payload: dict[str, Any], tmp: Path) -> None:
    with open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (format and kind added here) atomically and durably."""
    unknown = set(payload) - KEYS - {"format"}
    if unknown:
        raise ValueError(f"unknown checkpoint keys: {sorted(unknown)}")
    if payload.get("kind") not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {payload.get('kind')!r}")
    return write_atomic(path, lambda tmp: _write({"format": FORMAT, **payload}, tmp), durable=True)


def _read(path: Path) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            raise CheckpointError(
                f"{path} holds Python objects a checkpoint never contains; it was not written by "
                "AAM and is not loaded (no pickled code is ever run)."
            ) from None
        raise CheckpointError(f"{path} is not an AAM checkpoint (unreadable pickle).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "zip archive" in detail or "central directory" in detail or isinstance(exc, EOFError):
            raise CheckpointError(f"{path} is truncated or not a checkpoint ({detail}).") from None
        raise CheckpointError(f"{path} is not an AAM checkpoint ({detail}).") from None
    except Exception as exc:  # torch's legacy reader fails on arbitrary bytes in many ways
        raise CheckpointError(f"{path} is not an AAM checkpoint ({type(exc).__name__}).") from None


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read, check and migrate a checkpoint; ``kind`` demands ``train`` or ``pretrain``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    payload = _read(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), int):
        raise CheckpointError(f"{path} is not an AAM checkpoint (no format version).")
    version = payload["format"]
    if version > FORMAT:
        written = payload.get("aam_version", "a newer version")
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this AAM reads ({FORMAT}); it was "
            f"written by AAM {written}: upgrade AAM to load it."
        )
    while version < FORMAT:
        if version not in MIGRATIONS:
            raise CheckpointError(f"{path} has checkpoint format {version}, which AAM can no longer read.")
        try:
            payload = MIGRATIONS[version](payload)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path} is a damaged format-{version} checkpoint ({exc}).") from None
        version = payload["format"]
    unknown = sorted(set(payload) - KEYS)
    if unknown:
        raise CheckpointError(
            f"{path} holds keys this AAM does not know ({', '.join(unknown)}); it was written by a "
            f"newer AAM ({payload.get('aam_version', 'unknown version')}): upgrade to load it."
        )
    missing = sorted(REQUIRED - set(payload))
    if missing:
        raise CheckpointError(f"{path} is not a complete AAM checkpoint (missing {', '.join(missing)}).")
    if payload["kind"] not in KINDS:
        raise CheckpointError(f"{path} has an unknown checkpoint kind '{payload['kind']}'.")
    if kind is not None and payload["kind"] != kind:
        hint = {
            "train": "it is a pretrained encoder: fine-tune it with 'aam train --pretrained-encoder'",
            "pretrain": "it is a fine-tuned model, not a pretrained encoder",
        }[kind]
        raise CheckpointError(f"{path} is a '{payload['kind']}' checkpoint where a '{kind}' one is needed; {hint}.")
    return payload
