"""The shared machinery of every method: batches of the explained samples, each unique ASV
encoded once, and many masked copies of a sample scored together.

A masked copy keeps the sample's slots and ``totals`` and only switches slots off in ``mask``:
the sample encoder, pooling and every fusion exclude a masked slot exactly as they exclude
padding (there is no position encoding over slots), and the ASV vectors are computed once per
batch and passed in as ``Batch.asv_embeddings``. So a copy costs one row of the sample encoder,
not another pass of the ASV encoder.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np
import torch

from aam_core.attribution.data import ExplainData
from aam_core.data.batching import Batch, iter_batches

#: Rows of masked copies scored in one forward pass.
CHUNK_ROWS = 256
_HAS_FULL_FLAG = "full_samples" in attrs.fields_dict(Batch)


@attrs.define
class SampleBatch:
    """One batch of explained samples on the model's device, with its ASV vectors."""

    batch: Batch
    vectors: torch.Tensor  # [U, D] ASV-encoder output of the batch's unique ASVs
    slots: np.ndarray  # long [B] number of ASVs the model reads in each sample
    features: list[np.ndarray]  # per sample: dataset feature index of each slot read
    counts: list[np.ndarray]  # per sample: raw count of each slot read

    @property
    def size(self) -> int:
        return self.batch.size


def sample_batches(data: ExplainData, batch_size: int | None = None) -> Iterator[SampleBatch]:
    """The explained rows in batches of ``batch_size`` (default: the training batch size)."""
    loaded = data.loaded
    config = loaded.config
    model = loaded.model
    for batch in iter_batches(
        data.dataset,
        data.rows,
        batch_size or config.training.batch_size,
        max_asvs=config.data.max_asvs,
        categories=data.codes,
        target=None,
    ):
        if data.neighbours is not None:
            batch = attrs.evolve(batch, neighbours=torch.from_numpy(data.neighbours[batch.rows]))
        batch = batch.to(loaded.device)
        with torch.no_grad():
            vectors = model.asv_encoder.readout_of(model.asv_encoder.patches(batch.asv_tokens))
        mask = batch.mask.cpu().numpy()
        index = batch.features[batch.asv_index.cpu().numpy()]
        counts = batch.counts.cpu().numpy()
        slots = mask.sum(axis=1)
        yield SampleBatch(
            batch=batch,
            vectors=vectors,
            slots=slots,
            features=[index[b, :n] for b, n in enumerate(slots)],
            counts=[counts[b, :n] for b, n in enumerate(slots)],
        )


def copies(sb: SampleBatch, owners: np.ndarray, mask: torch.Tensor, **replace) -> Batch:
    """A batch of copies of samples ``owners`` (positions in ``sb``) with their own ``mask``."""
    batch = sb.batch
    idx = torch.as_tensor(owners, dtype=torch.long, device=batch.asv_index.device)
    fields = {
        "asv_index": batch.asv_index[idx],
        "counts": batch.counts[idx],
        "mask": mask,
        "totals": batch.totals[idx],
        "categories": batch.categories[idx],
        "target": None,
        "sample_ids": [batch.sample_ids[o] for o in owners],
        "rows": batch.rows[owners],
        "count_mask": None,
        "asv_embeddings": sb.vectors,
        "neighbours": None if batch.neighbours is None else batch.neighbours[idx],
    }
    if _HAS_FULL_FLAG:
        # A batch whose samples fill every slot may let attention skip the mask; copies switch
        # slots off, so they must not claim that.
        fields["full_samples"] = False
    fields.update(replace)
    return attrs.evolve(batch, **fields)


def masked_scores(
    data: ExplainData,
    sb: SampleBatch,
    owners: np.ndarray,
    mask: torch.Tensor,
    classes: torch.Tensor | None,
    chunk: int = CHUNK_ROWS,
) -> np.ndarray:
    """Score ``[R]`` (model units) of copies of samples ``owners`` each reading the slots in
    ``mask [R, S]``; ``classes [B]`` picks each sample's class for a classifier."""
    model, target = data.loaded.model, data.target
    out = np.empty(len(owners), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(owners), chunk):
            part = owners[start : start + chunk]
            rows = copies(sb, part, mask[start : start + chunk])
            picked = (
                None if classes is None else classes[torch.as_tensor(part, device=classes.device)]
            )
            prediction = model(rows).prediction
            out[start : start + len(part)] = target.score(prediction, picked).cpu().numpy()
    return out


def full_predictions(data: ExplainData, sb: SampleBatch) -> tuple[np.ndarray, torch.Tensor | None]:
    """Each sample's own score (model units) and, for a classifier, its predicted class."""
    with torch.no_grad():
        prediction = data.loaded.model(copies(sb, np.arange(sb.size), sb.batch.mask)).prediction
    classes = data.target.predicted_class(prediction)
    return data.target.score(prediction, classes).cpu().numpy().astype(np.float64), classes
