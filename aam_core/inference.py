"""Predicting for new samples with a trained model; predictions come back in original units."""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
import torch

from aam_core.config import DataConfig
from aam_core.data.batching import Batch, iter_batches
from aam_core.data.dataset import Dataset, load_dataset
from aam_core.files import write_tsv_atomic
from aam_core.loading import LoadedModel, load_model
from aam_core.model.aam import forward_batches
from aam_core.neighbours import neighbour_features
from aam_core.targets import TargetEncoding


def _collect_extras(
    found: dict[str, dict[int, np.ndarray]],
    batch: Batch,
    extras: dict[str, torch.Tensor],
    axes: dict[str, int | None],
    sequences: np.ndarray,
) -> None:
    """Per-sample fusion internals, trimmed along the axis the fusion declares for ASV slots,
    plus those ASVs' sequences (``asv_sequences``) so each row can be read against its ASV."""
    mask = batch.mask.cpu().numpy()
    features = batch.features[batch.asv_index.cpu().numpy()]
    arrays = {key: value.float().cpu().numpy() for key, value in extras.items()}
    for b, row in enumerate(batch.rows):
        n = int(mask[b].sum())
        found.setdefault("asv_sequences", {})[row] = sequences[features[b, :n]]
        for key, array in arrays.items():
            axis = axes.get(key)
            item = array[b]
            found.setdefault(key, {})[row] = item if axis is None else np.take(item, np.arange(n), axis=axis)


def _prediction_data(loaded: LoadedModel, table, metadata, sequences):
    """The table's samples with the model's inputs; without metadata every category is unknown."""
    config = loaded.config
    columns = list(loaded.encoder.columns)
    by = config.data.normalize_by
    if metadata is None and (columns or by):
        needed = ", ".join(columns + ([by] if by and by not in columns else []))
        warnings.warn(
            f"No --metadata: the model's categorical inputs ({needed}) are treated as unknown for "
            "every sample.",
            stacklevel=3,
        )
    data_config = DataConfig(
        table=str(table),
        metadata=None if metadata is None else str(metadata),
        sequences=None if sequences is None else str(sequences),
        categorical_columns=columns if metadata is not None else [],
        max_bp=config.data.max_bp,
        max_asvs=config.data.max_asvs,
        rarefy_depth=config.data.rarefy_depth,
    )
    extra = tuple(c for c in [by] if c and metadata is not None)
    dataset = load_dataset(data_config, target_required=False, extra_columns=extra)
    if metadata is None:
        codes = np.zeros((len(dataset), len(columns)), dtype=np.int64)
        transform_categories = np.full(len(dataset), None, dtype=object) if by else None
    else:
        codes = loaded.encoder.encode(dataset)
        transform_categories = dataset.column(by).astype(object) if by else None
        inputs = loaded.model.n_columns
        if transform_categories is not None and inputs:
            # a sample with every categorical input unknown is predicted as the unknown branch
            # learnt it: decoded without its category
            transform_categories[(codes[:, :inputs] == 0).all(axis=1)] = None
    return dataset, codes, transform_categories


def reference_summaries(
    loaded: LoadedModel, dataset: Dataset, codes: np.ndarray, encoding: TargetEncoding
) -> np.ndarray | None:
    """``[n, 2, F]``: each sample's summary of its nearest reference samples, for a model trained
    with ``--neighbours`` (None for any other)."""
    if loaded.references is None:
        return None
    return neighbour_features(loaded.references, dataset, codes, loaded.config.model.neighbours, encoding)


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
    ``actual`` when ``metadata`` holds the target column; for a classifier also one probability
    column per class. ``metadata`` supplies the categorical inputs; without it they are unknown
    (a warning says so). With ``return_extras``, also ``{name: [one array per sample]}`` of the
    fusion's internals (``gate [D]``, ``attention [heads, S, K]``...) trimmed to each sample's
    ASVs, and ``asv_sequences`` naming those ASVs in the same order; samples without reads get
    None and an empty prediction."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    config = loaded.config
    dataset, codes, transform_categories = _prediction_data(loaded, table, metadata, sequences)
    encoding = attrs.evolve(loaded.encoding, transform_categories=transform_categories)
    empty = dataset.totals == 0
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
    found = reference_summaries(loaded, dataset, codes, encoding)
    if found is not None:
        batches = (attrs.evolve(b, neighbours=torch.from_numpy(found[b.rows])) for b in batches)
    classifier = encoding.classifier
    predicted = pd.Series([None] * len(dataset), dtype=object if classifier else float)
    probabilities = np.full((len(dataset), len(encoding.classes or [])), np.nan)
    per_sample: dict[str, dict[int, np.ndarray]] = {}
    axes = getattr(loaded.model.fusion, "extras_axes", {})
    with torch.no_grad():
        for batch, out in forward_batches(loaded.model, batches, loaded.device, nullcontext):
            raw = out.prediction.float().cpu().numpy()
            predicted.iloc[batch.rows] = encoding.decode(raw, batch.rows)
            if classifier:
                probabilities[batch.rows] = encoding.probabilities(raw)
            if return_extras:
                _collect_extras(per_sample, batch, out.extras, axes, dataset.sequences)
    extras = {key: [found.get(row) for row in range(len(dataset))] for key, found in per_sample.items()}
    frame = pd.DataFrame({"sample_id": dataset.sample_ids, "predicted": predicted})
    column = config.data.metadata_column
    if column and column in dataset.metadata.columns:
        actual = dataset.metadata[column].to_numpy()
        frame.insert(1, "actual", actual if classifier else pd.to_numeric(actual, errors="coerce"))
    for k, name in enumerate(encoding.classes or []):
        frame[name] = probabilities[:, k]
    if output is not None:
        write_tsv_atomic(frame, output)
    return (frame, extras) if return_extras else frame
