"""Reference samples: the training samples a model compares each new sample with (``--neighbours K``).

Microbiome studies often sample the same people, sites or plots more than once, and a sample's
closest profiles in the training set then carry its target almost exactly. The model's own
vector pools its ASVs and loses which profile is which; a forest that splits on single ASVs keeps
it. With ``--neighbours K`` the target head also reads, for each sample, a summary of its K most
similar training samples:

- the similarity-weighted mean of their targets, in model units (for a classifier, their
  similarity-weighted class shares);
- the closest one's target (for a classifier, its class one-hot);
- the similarity of the closest one, and the mean similarity of the K;
- how far the K disagree (0 when they share one target).

Similarity is the Jaccard index of the two samples' sets of ASV sequences: ASVs are matched by
sequence, so a table with other feature IDs (or other ASVs besides) is compared correctly. A
sample is compared with the reference samples that share each of its known categorical values
(an unknown value restricts nothing). The head learns how far to trust the summary, and a
gate of its own hands over the weighted target outright where it learns to (typically where the
K agree: the same person sampled again); the unknown-category head reads the summary over all
reference samples, since it does not know the categories either.

A training sample is never its own neighbour: its summary comes from the other training samples,
as a new sample's comes from all of them. The reference samples (their ASV sets, categories and
targets) are stored in the checkpoint, so ``aam predict`` compares with the same samples.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch
from scipy import sparse

from aam_core.data.dataset import Dataset
from aam_core.targets import TargetEncoding

#: Query rows compared at once (bounds the dense similarity block to CHUNK × references).
CHUNK = 256


@attrs.frozen(eq=False)
class References:
    """The training samples' ASV sets (keyed by sequence), categorical codes and targets."""

    sequences: np.ndarray  # object [f]: the ASV sequences the sets are over
    presence: sparse.csr_matrix  # float32 [n, f]: 1 where the sample has the ASV
    codes: np.ndarray  # int64 [n, K]: the model's categorical inputs (0 = unknown)
    target: np.ndarray  # float64 [n] original units, or int64 [n] class index

    def __len__(self) -> int:
        return self.presence.shape[0]

    @classmethod
    def of(cls, dataset: Dataset, rows: np.ndarray, codes: np.ndarray, target: np.ndarray) -> References:
        """The samples ``rows`` of ``dataset`` with their codes and targets (dataset-aligned)."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = dataset.counts[rows]
        used = np.flatnonzero(np.asarray((counts != 0).sum(axis=0)).ravel())
        presence = (counts[:, used] != 0).astype(np.float32).tocsr()
        return cls(
            sequences=np.asarray(dataset.sequences[used], dtype=object),
            presence=presence,
            codes=np.asarray(codes[rows], dtype=np.int64),
            target=np.asarray(target[rows]),
        )

    def presence_of(self, dataset: Dataset) -> tuple[sparse.csr_matrix, np.ndarray]:
        """``dataset``'s ASV sets over this object's sequences ``[n, f]`` and each sample's
        number of ASVs (those no reference sample has included)."""
        column = {s: i for i, s in enumerate(self.sequences)}
        where = np.array([column.get(s, -1) for s in dataset.sequences], dtype=np.int64)
        present = (dataset.counts != 0).astype(np.float32).tocsr()
        sizes = np.asarray(present.sum(axis=1)).ravel()
        known = np.flatnonzero(where >= 0)
        mapping = sparse.csr_matrix(
            (np.ones(len(known), dtype=np.float32), (known, where[known])), shape=(len(where), len(self.sequences))
        )
        return (present @ mapping).tocsr(), sizes

    def state_dict(self) -> dict[str, Any]:
        """Plain types and tensors, for a checkpoint read with ``weights_only``."""
        classes = self.target.dtype.kind in "iu"
        return {
            "sequences": [str(s) for s in self.sequences],
            "indptr": torch.from_numpy(self.presence.indptr.astype(np.int64)),
            "indices": torch.from_numpy(self.presence.indices.astype(np.int64)),
            "codes": torch.from_numpy(self.codes),
            "target": torch.from_numpy(self.target.astype(np.int64 if classes else np.float64)),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> References:
        indptr, indices = state["indptr"].numpy(), state["indices"].numpy()
        sequences = np.array(state["sequences"], dtype=object)
        presence = sparse.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(indptr) - 1, len(sequences))
        )
        return cls(sequences=sequences, presence=presence, codes=state["codes"].numpy(), target=state["target"].numpy())


def similarities(references: References, presence: sparse.csr_matrix, sizes: np.ndarray) -> np.ndarray:
    """Jaccard index ``[n, len(references)]`` of each query's ASV set with each reference's."""
    shared = (presence @ references.presence.T).toarray()
    ref_sizes = np.asarray(references.presence.sum(axis=1)).ravel()
    union = sizes[:, None] + ref_sizes[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def _summary(
    sim: np.ndarray, references: References, k: int, out_dim: int, classifier: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query row: the K neighbours' similarity-weighted target and the nearest one's
    (``[n]`` original units each, or ``[n, out_dim]`` class shares and one-hot), and ``[n, 3]``
    (top similarity, mean of the K, how far the K disagree). Columns set to ``-inf`` in ``sim``
    are not candidates; a row with none keeps NaN.

    Disagreement is 0 when the K share one target: for regression the weighted mean absolute
    deviation from their weighted mean, in standard deviations of the reference targets; for a
    classifier the weight share outside the top class."""
    n = sim.shape[0]
    k = min(k, sim.shape[1])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else np.tile(np.arange(k), (n, 1))
    values = np.take_along_axis(sim, top, axis=1)
    valid = np.isfinite(values)
    weights = np.where(valid, np.clip(values, 1e-6, None), 0.0)
    total = weights.sum(axis=1)
    stats = np.full((n, 3), np.nan)
    has = total > 0
    rows, best = np.arange(n), values.argmax(axis=1)  # non-candidates are -inf
    stats[has, 0] = values[rows, best][has]
    stats[has, 1] = np.where(valid, values, 0.0)[has].sum(axis=1) / valid[has].sum(axis=1)
    nearest = references.target[top[rows, best]]
    if classifier:
        first = np.where(has[:, None], np.eye(out_dim)[nearest], np.nan)
        shares = (weights[:, :, None] * np.eye(out_dim)[references.target[top]]).sum(axis=1)
        mean = np.divide(shares, total[:, None], out=np.full_like(shares, np.nan), where=has[:, None])
        stats[has, 2] = 1.0 - mean[has].max(axis=1)  # the share of the weight not on the top class
    else:
        targets = references.target[top]
        mean = np.divide((weights * targets).sum(axis=1), total, out=np.full(n, np.nan), where=has)
        first = np.where(has, nearest, np.nan)
        spread = (weights * np.abs(targets - np.nan_to_num(mean)[:, None])).sum(axis=1)
        stats[has, 2] = spread[has] / total[has] / _target_scale(references)
    return mean, first, stats


def _target_scale(references: References) -> float:
    """The reference targets' standard deviation (1 where they do not vary): the unit of a
    regression summary's spread, so it reads the same whatever the target's units."""
    std = float(np.std(references.target))
    return std if std > 0 else 1.0


def neighbour_features(
    references: References,
    dataset: Dataset,
    codes: np.ndarray,
    k: int,
    encoding: TargetEncoding,
    *,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """``float32 [n, 2, F]``: each dataset sample's summary of its ``k`` nearest reference samples,
    ``[:, 0]`` among those sharing its known categories and ``[:, 1]`` among all of them, with
    ``F = 2 · out_dim + 3`` (the weighted and the nearest target in model units, the top and the
    mean similarity, and how far the K disagree; see :func:`_summary`).

    ``exclude [n]``: the reference index of each dataset row that is itself a reference sample
    (-1 for the others), so no training sample sees its own target."""
    classifier = encoding.classifier
    out_dim = len(encoding.classes) if classifier else 1
    presence, sizes = references.presence_of(dataset)
    codes = np.asarray(codes[:, : references.codes.shape[1]], dtype=np.int64)
    n = len(dataset)
    means = [np.zeros((n, out_dim)) if classifier else np.zeros(n) for _ in range(2)]
    firsts = [m.copy() for m in means]
    stats = [np.zeros((n, 3)) for _ in range(2)]
    for start in range(0, n, CHUNK):
        part = slice(start, min(n, start + CHUNK))
        sim = similarities(references, presence[part], sizes[part])
        if exclude is not None:
            own = exclude[part]
            inside = np.flatnonzero(own >= 0)
            sim[inside, own[inside]] = -np.inf
        query = codes[part]
        allowed = ((query[:, None, :] == 0) | (query[:, None, :] == references.codes[None, :, :])).all(axis=2)
        free = _summary(sim, references, k, out_dim, classifier)
        kept = free  # no known category (or none at all) restricts anything
        if not allowed.all():
            kept = _summary(np.where(allowed, sim, -np.inf), references, k, out_dim, classifier)
            lost = np.isnan(kept[2][:, 0])  # no reference shares the categories: the summary over all
            for mine, everyone in zip(kept, free, strict=True):
                mine[lost] = everyone[lost]
        for branch, (mean, first, stat) in enumerate((kept, free)):
            means[branch][part], firsts[branch][part], stats[branch][part] = mean, first, stat
    # NaN only where no reference sample is a candidate at all (a single training sample, itself):
    # no class share, or the references' mean target; no similarity, and full disagreement
    fill = 0.0 if classifier else float(np.mean(references.target))
    out = []
    for branch in range(2):
        targets = [np.where(np.isnan(values), fill, values) for values in (means[branch], firsts[branch])]
        if not classifier:
            scale = encoding if branch == 0 else encoding.hidden()
            targets = [scale.encode(values)[:, None] for values in targets]
        stat = np.nan_to_num(stats[branch])
        stat[np.isnan(stats[branch][:, 2]), 2] = 1.0
        out.append(np.concatenate([*targets, stat], axis=1))
    return np.stack(out, axis=1).astype(np.float32)


def feature_width(out_dim: int) -> int:
    """``F`` for a target head of ``out_dim`` outputs: the weighted and the nearest target, the
    top and the mean similarity, and the disagreement. The weighted target comes first: the head
    blends its own output towards it (:class:`~aam_core.model.heads.TargetHead`)."""
    return 2 * out_dim + 3
