"""Loading a trained model and predicting for new samples.

A checkpoint alone rebuilds the model, its fusion plugin, the category vocabularies and the
fitted target transform; predictions come back in original units.
"""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

import aam_core
from aam_core.config import DataConfig, RunConfig, structure, unstructure
from aam_core.data.batching import Batch, iter_batches
from aam_core.data.categories import CategoryEncoder
from aam_core.data.dataset import load_dataset
from aam_core.errors import CheckpointError, PluginError
from aam_core.files import write_tsv_atomic
from aam_core.model.aam import AAMModel
from aam_core.model.build import build_model
from aam_core.plugins import get_plugin
from aam_core.training.checkpoint import load_checkpoint
from aam_core.training.supervised import TargetEncoding, forward_batches

log = logging.getLogger("aam")


@attrs.define
class LoadedModel:
    """A model with everything needed to read its inputs and outputs."""

    config: RunConfig
    model: AAMModel
    encoder: CategoryEncoder
    encoding: TargetEncoding
    device: torch.device

    def predict(self, table: str | Path, **kwargs: Any) -> pd.DataFrame:
        """Shortcut for :func:`predict` with this model."""
        return predict(self, table, **kwargs)


def checkpoint_payload(loaded: LoadedModel, *, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    """What goes into ``best.pt``/``last.pt``."""
    transform = loaded.encoding.transform
    plain = {
        "aam_version": aam_core.__version__,
        "config": unstructure(loaded.config),
        "categories": loaded.encoder.state_dict(),
        "classes": loaded.encoding.classes,
        "transform": None
        if transform is None
        else {"name": loaded.config.training.target_transform, "state": transform.state_dict()},
        "epoch": epoch,
        "metrics": dict(metrics),
    }
    # Through JSON so only plain types reach the file: checkpoints load with weights_only=True.
    plain = json.loads(json.dumps(plain, default=float))
    plain["model_state"] = {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}
    return plain


def _plugin_for(family: str, name: str, path: Path) -> Any:
    try:
        return get_plugin(family, name)
    except PluginError:
        raise CheckpointError(
            f"{path} was trained with {family} plugin '{name}', which is not installed here; "
            "install the package that provides it (see 'aam plugins')."
        ) from None


def load_model(path: str | Path, device: str | None = None) -> LoadedModel:
    """Rebuild a trained model from a checkpoint (``checkpoints/best.pt``)."""
    path = Path(path)
    payload = load_checkpoint(path)
    config = structure(payload["config"], RunConfig, f"config stored in {path}")
    encoder = CategoryEncoder.from_state(payload["categories"])
    classes = payload["classes"]
    transform = None
    if payload["transform"] is not None:
        transform = _plugin_for("transform", payload["transform"]["name"], path).factory(options=None)
        transform.load_state_dict(payload["transform"]["state"])
    columns = list(config.data.categorical_columns)
    if columns:
        _plugin_for("fusion", config.model.fusion, path)
    scaling = encoder.locate(config.model.conditional_output_scaling)
    out_dim = len(classes) if classes else config.model.out_dim
    model = build_model(config, out_dim=out_dim, category_sizes=encoder.sizes[: len(columns)], scaling=scaling)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not match the model its config describes: {exc}") from None
    strategy = get_plugin("parallel", config.training.parallel).factory(device=device, options=None)
    target = strategy.root_device
    model.to(target).eval()
    encoding = TargetEncoding(classes=classes, transform=transform, transform_categories=None)
    return LoadedModel(config=config, model=model, encoder=encoder, encoding=encoding, device=target)


def _collect_extras(
    found: dict[str, dict[int, np.ndarray]], batch: Batch, extras: dict[str, torch.Tensor], sequences: np.ndarray
) -> None:
    """Per-sample fusion internals, trimmed to the sample's own ASVs, plus those ASVs' sequences
    (``asv_sequences``) so each attention row can be read against its ASV."""
    mask = batch.mask.cpu().numpy()
    slots = mask.shape[1]
    features = batch.features[batch.asv_index.cpu().numpy()]
    arrays = {key: value.float().cpu().numpy() for key, value in extras.items()}
    for b, row in enumerate(batch.rows):
        n = int(mask[b].sum())
        found.setdefault("asv_sequences", {})[row] = sequences[features[b, :n]]
        for key, array in arrays.items():
            item = array[b]
            axis = next((i for i, size in enumerate(item.shape) if size == slots), None)
            found.setdefault(key, {})[row] = item if axis is None else np.take(item, np.arange(n), axis=axis)


def predict(
    model: LoadedModel | str | Path,
    table: str | Path,
    *,
    metadata: str | Path | None = None,
    sequences: str | Path | None = None,
    output: str | Path | None = None,
    batch_size: int | None = None,
    return_extras: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """Predict every sample of ``table``: ``sample_id``, ``predicted`` (original units) and
    ``actual`` when ``metadata`` holds the target column. ``metadata`` supplies the categorical
    inputs. With ``return_extras``, also ``{name: [one array per sample]}`` of the fusion's
    internals (``gate [D]``, ``attention [heads, S, K]``...) trimmed to each sample's ASVs, and
    ``asv_sequences`` naming those ASVs in the same order; samples without reads get None and an
    empty prediction."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    config = loaded.config
    encoding = loaded.encoding
    by = config.data.normalize_by
    if metadata is None and (loaded.encoder.columns or by):
        needed = ", ".join(loaded.encoder.columns + ([by] if by else []))
        raise CheckpointError(f"This model needs --metadata with the column(s): {needed}.")
    extra = tuple(c for c in [by] if c)
    data_config = DataConfig(
        table=str(table),
        metadata=None if metadata is None else str(metadata),
        sequences=None if sequences is None else str(sequences),
        categorical_columns=list(loaded.encoder.columns),
        max_bp=config.data.max_bp,
        max_asvs=config.data.max_asvs,
        rarefy_depth=config.data.rarefy_depth,
    )
    dataset = load_dataset(data_config, target_required=False, extra_columns=extra)
    codes = loaded.encoder.encode(dataset)
    if by:
        encoding = attrs.evolve(encoding, transform_categories=dataset.column(by))
    empty = np.asarray(dataset.counts.sum(axis=1)).ravel() == 0
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} samples have no reads (e.g. '{dataset.sample_ids[empty][0]}'); "
            "their prediction is left empty.",
            stacklevel=2,
        )
    batches = iter_batches(
        dataset,
        np.flatnonzero(~empty),
        batch_size or config.training.batch_size,
        max_asvs=config.data.max_asvs,
        categories=codes,
        target=None,
        bucket=loaded.device.type == "cuda",
    )
    predicted = pd.Series([None] * len(dataset), dtype=object if config.model.classifier else float)
    per_sample: dict[str, dict[int, np.ndarray]] = {}
    with torch.no_grad():
        for batch, out in forward_batches(loaded.model, batches, loaded.device, nullcontext):
            decoded = encoding.decode(out.prediction.float().cpu().numpy(), batch.rows)
            predicted.iloc[batch.rows] = decoded
            if return_extras:
                _collect_extras(per_sample, batch, out.extras, dataset.sequences)
    extras = {key: [found.get(row) for row in range(len(dataset))] for key, found in per_sample.items()}
    frame = pd.DataFrame({"sample_id": dataset.sample_ids, "predicted": predicted})
    column = config.data.metadata_column
    if column and column in dataset.metadata.columns:
        actual = dataset.metadata[column].to_numpy()
        frame.insert(1, "actual", actual if config.model.classifier else pd.to_numeric(actual, errors="coerce"))
    if output is not None:
        write_tsv_atomic(frame, output)
        log.info("Wrote %d predictions to %s.", len(frame), output)
    return (frame, extras) if return_extras else frame
