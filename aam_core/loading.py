"""A trained model with everything needed to read its inputs and outputs, and the checkpoint
payload that stores it.

Training writes checkpoints through :func:`model_payload`; ``aam predict`` and a resumed run
rebuild the model through :func:`restore`. The checkpoint alone rebuilds the model, its fusion
plugin, the category vocabularies and the fitted target transform.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch

import aam_core
from aam_core.checkpoint import load_checkpoint
from aam_core.config import RunConfig, structure, unstructure
from aam_core.data.categories import CategoryEncoder
from aam_core.devices import pick_device
from aam_core.errors import CheckpointError, PluginError
from aam_core.model.aam import AAMModel
from aam_core.model.build import build_model
from aam_core.neighbours import References
from aam_core.plugins import get_plugin
from aam_core.targets import TargetEncoding


@attrs.define
class LoadedModel:
    """A model with everything needed to read its inputs and outputs."""

    config: RunConfig
    model: AAMModel
    encoder: CategoryEncoder
    encoding: TargetEncoding | None  # None for a pretrained encoder
    device: torch.device
    #: the training samples a ``--neighbours`` model compares each sample with (None: off)
    references: References | None = None

    def predict(self, table: str | Path, **kwargs: Any) -> Any:
        """Shortcut for :func:`aam_core.predict` with this model."""
        from aam_core.inference import predict

        return predict(self, table, **kwargs)


def model_payload(
    loaded: LoadedModel, *, epoch: int, metrics: dict[str, float], model_state: dict[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """What goes into ``best.pt``/``last.pt`` apart from the training state; ``model_state`` is
    the full weights when the model's own are sharded over processes."""
    encoding = loaded.encoding
    transform = None if encoding is None else encoding.transform
    plain = {
        "kind": loaded.config.task,
        "aam_version": aam_core.__version__,
        "config": unstructure(loaded.config),
        "categories": loaded.encoder.state_dict(),
        "classes": None if encoding is None else encoding.classes,
        "transform": None
        if transform is None
        else {"name": loaded.config.training.target_transform, "state": transform.state_dict()},
        "epoch": epoch,
        "metrics": dict(metrics),
    }
    # Through JSON so only plain types reach the file: checkpoints load with weights_only=True.
    plain = json.loads(json.dumps(plain, default=float))
    if model_state is None:
        model_state = {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}
    plain["model_state"] = model_state
    plain["references"] = None if loaded.references is None else loaded.references.state_dict()
    return plain


def _plugin_for(family: str, name: str, path: Path) -> Any:
    try:
        return get_plugin(family, name)
    except PluginError:
        raise CheckpointError(
            f"{path} was trained with {family} plugin '{name}', which is not installed here; "
            "install the package that provides it (see 'aam plugins')."
        ) from None


def restore(payload: dict[str, Any], path: str | Path, device: str | None = None) -> LoadedModel:
    """Rebuild the model a (loaded, migrated) checkpoint payload describes, on ``device``
    (default: the run's ``--device``, else CUDA when available)."""
    path = Path(path)
    config = structure(payload["config"], RunConfig, f"config stored in {path}")
    encoder = CategoryEncoder.from_state(payload.get("categories") or {"columns": [], "vocab": {}})
    classes = payload.get("classes")
    encoding = None
    if config.task == "train":
        transform = None
        if payload.get("transform") is not None:
            transform = _plugin_for("transform", payload["transform"]["name"], path).factory(options=None)
            transform.load_state_dict(payload["transform"]["state"])
        encoding = TargetEncoding(classes=classes, transform=transform, transform_categories=None)
    columns = list(config.data.categorical_columns)
    if columns:
        _plugin_for("fusion", config.model.fusion, path)
    scaling = encoder.locate(config.model.conditional_output_scaling)
    out_dim = len(classes) if classes else 1
    model = build_model(config, out_dim=out_dim, category_sizes=encoder.sizes[: len(columns)], scaling=scaling)
    state = payload["model_state"]
    if model.pool is None:  # format-1 models built a pooling layer even where the fusion skips it
        state = {k: v for k, v in state.items() if not k.startswith("pool.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{path} does not match the model its config describes: {detail}") from None
    references = None
    if model.neighbours:
        if payload.get("references") is None:
            raise CheckpointError(f"{path} has a --neighbours model but not its reference samples.")
        references = References.from_state(payload["references"])
    target = pick_device(device or config.training.device)
    model.to(target).eval()
    return LoadedModel(config=config, model=model, encoder=encoder, encoding=encoding, device=target, references=references)


def load_model(path: str | Path, device: str | None = None) -> LoadedModel:
    """Rebuild a trained model from a checkpoint (``checkpoints/best.pt``); the file is read once."""
    return restore(load_checkpoint(path, kind="train"), path, device)
