"""The model, the table and the samples an explanation runs on.

The table is read exactly as ``aam predict`` reads it (the checkpoint's ``max_bp``,
``max_asvs``, rarefaction depth and category vocabularies); taxonomy comes from the BIOM's
observation metadata (``taxonomy``, a list of ranks or one string) when it has one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import attrs
import numpy as np

from aam_core.attribution.target import Target
from aam_core.checkpoint import load_checkpoint
from aam_core.data.dataset import Dataset
from aam_core.data.samples import resolve_samples
from aam_core.data.table import read_table
from aam_core.errors import AAMError, CheckpointError, DataError
from aam_core.inference import _prediction_data, reference_summaries
from aam_core.loading import LoadedModel, restore


@attrs.define
class ExplainData:
    """A loaded model with the dataset it explains and the rows chosen for explaining."""

    loaded: LoadedModel
    dataset: Dataset
    codes: np.ndarray  # long [n, K] category codes of every dataset row
    target: Target
    rows: np.ndarray  # dataset rows to explain, in the order asked
    taxonomy: np.ndarray  # str [f] per dataset feature ('' where the table has none)
    #: [n, 2, F] nearest-reference summaries of every dataset row (a ``--neighbours`` model), held
    #: at the whole sample's: masking ASVs changes what the network reads, not the neighbours
    neighbours: np.ndarray | None = None

    @property
    def sample_ids(self) -> np.ndarray:
        return self.dataset.sample_ids[self.rows]

    def actual(self) -> np.ndarray | None:
        """The target column of the explained samples where the metadata holds it, else None."""
        column = self.loaded.config.data.metadata_column
        if not column or column not in self.dataset.metadata.columns:
            return None
        return self.dataset.metadata[column].to_numpy()[self.rows]


def _taxonomy_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return "; ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def read_taxonomy(table: str | os.PathLike, feature_ids: np.ndarray) -> np.ndarray:
    """``taxonomy`` observation metadata of ``feature_ids`` ('' for features without it)."""
    biom_table = read_table(table)
    ids = [str(i) for i in biom_table.ids(axis="observation")]
    metadata = biom_table.metadata(axis="observation")
    found: dict[str, str] = {}
    if metadata is not None:
        for fid, entry in zip(ids, metadata, strict=True):
            if entry:
                found[fid] = _taxonomy_text(entry.get("taxonomy"))
    return np.array([found.get(str(f), "") for f in feature_ids], dtype=object)


def select_rows(dataset: Dataset, samples, table: str | os.PathLike) -> np.ndarray:
    """Dataset rows of ``samples`` (a list or a file of IDs; None: every sample). A listed ID the
    table lacks is an error; samples without reads are skipped with a warning."""
    if samples is None:
        rows = np.arange(len(dataset))
    else:
        source = f"--samples {samples}" if isinstance(samples, str | os.PathLike) else "samples"
        ids = resolve_samples(samples, "explained")
        position = {sid: i for i, sid in enumerate(dataset.sample_ids)}
        missing = [s for s in ids if s not in position]
        if missing:
            raise DataError(
                f"{len(missing)} of the {len(ids)} samples in {source} are not in {table} "
                f"(e.g. '{missing[0]}')."
            )
        rows = np.array([position[s] for s in ids], dtype=np.int64)
    empty = dataset.totals[rows] == 0
    if empty.all():
        raise DataError(f"None of the samples to explain has reads in {table}.")
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} samples have no reads (e.g. '{dataset.sample_ids[rows][empty][0]}') "
            "and are not explained.",
            stacklevel=3,
        )
    return rows[~empty]


def read_model(path: str | os.PathLike, device: str | None = None) -> LoadedModel:
    """:func:`aam_core.load_model`, where any file torch cannot unpickle is a one-line
    :class:`CheckpointError` (``load_checkpoint`` lets some, such as a short text file's
    ``KeyError``, escape as tracebacks)."""
    try:
        payload = load_checkpoint(path, kind="train")
    except AAMError:
        raise
    except Exception as exc:  # torch's unpickler raises KeyError, IndexError... on junk
        raise CheckpointError(f"{path} is not an AAM checkpoint ({type(exc).__name__}).") from None
    return restore(payload, path, device)


def load_explain_data(
    model: LoadedModel | str | os.PathLike,
    table: str | os.PathLike,
    *,
    metadata: str | os.PathLike | None = None,
    sequences: str | os.PathLike | None = None,
    samples=None,
    device: str | None = None,
) -> ExplainData:
    """Load and check everything before any work: the checkpoint must be a trained model."""
    loaded = model if isinstance(model, LoadedModel) else read_model(Path(model), device)
    if loaded.encoding is None or loaded.model.target_head is None:
        raise CheckpointError(
            "The model is a pretrained encoder without a target head; explain a model trained "
            "with 'aam train'."
        )
    dataset, codes, transform_categories = _prediction_data(loaded, table, metadata, sequences)
    rows = select_rows(dataset, samples, table)
    encoding = attrs.evolve(loaded.encoding, transform_categories=transform_categories)
    return ExplainData(
        loaded=loaded,
        dataset=dataset,
        codes=codes,
        target=Target(encoding, loaded.config.data.metadata_column),
        rows=rows,
        taxonomy=read_taxonomy(table, dataset.feature_ids),
        neighbours=reference_summaries(loaded, dataset, codes, encoding),
    )
