"""A table aligned with its metadata: the one object the model, baselines and splits read."""

from __future__ import annotations

import logging
import warnings

import attrs
import numpy as np
import pandas as pd
from scipy import sparse

from aam_core.config import DataConfig
from aam_core.data.metadata import read_metadata, require_column
from aam_core.data.rarefy import rarefy
from aam_core.data.table import feature_sequences, read_table, sample_by_feature
from aam_core.data.tokens import tokenize
from aam_core.errors import DataError

log = logging.getLogger("aam")


@attrs.define
class Dataset:
    """Samples × ASVs with tokens, metadata and (optionally) the target."""

    sample_ids: np.ndarray  # str [n]
    counts: sparse.csr_matrix  # float32 [n, f]
    sequences: np.ndarray  # str [f]
    tokens: np.ndarray  # uint8 [f, L]
    metadata: pd.DataFrame  # indexed by sample_ids, same order
    target: np.ndarray | None  # float [n] (regression) or str [n] (classification)
    feature_ids: np.ndarray | None = None  # str [f], the table's own IDs (hashes or sequences)
    totals: np.ndarray = attrs.field(default=None)  # float [n], each sample's read count

    def __attrs_post_init__(self) -> None:
        if self.feature_ids is None:
            self.feature_ids = self.sequences
        if self.totals is None:
            self.totals = np.asarray(self.counts.sum(axis=1), dtype=np.float64).ravel()

    def __len__(self) -> int:
        return len(self.sample_ids)

    def subset(self, rows: np.ndarray | list[int]) -> Dataset:
        rows = np.asarray(rows, dtype=np.int64)
        return Dataset(
            sample_ids=self.sample_ids[rows],
            counts=self.counts[rows],
            sequences=self.sequences,
            tokens=self.tokens,
            metadata=self.metadata.iloc[rows],
            target=None if self.target is None else self.target[rows],
            feature_ids=self.feature_ids,
            totals=self.totals[rows],
        )

    def rows_of(self, ids: list[str] | np.ndarray) -> np.ndarray:
        position = {sid: i for i, sid in enumerate(self.sample_ids)}
        return np.array([position[s] for s in ids], dtype=np.int64)

    def column(self, name: str) -> np.ndarray:
        """A metadata column as strings (missing → '')."""
        return self.metadata[name].astype("string").fillna("").to_numpy(dtype=str)


def _drop(reason: str, count: int) -> None:
    if count:
        log.info("Dropped %d samples: %s.", count, reason)


def load_dataset(
    config: DataConfig,
    *,
    target_required: bool = True,
    keep_all: bool | None = None,
    classifier: bool = False,
    extra_columns: tuple[str, ...] = (),
) -> Dataset:
    """Read, align and filter the table and metadata named in ``config``.

    For training (``target_required``), samples missing from either file, with an empty or
    non-numeric target, or with no reads are dropped and counted in the log; if none remain, that
    is a :class:`DataError`. For prediction (``keep_all``, the default without a target) every
    sample of the table is kept; pretraining needs no target but drops empty samples.
    """
    keep_all = not target_required if keep_all is None else keep_all
    table = read_table(config.table)
    sequences = np.array(feature_sequences(table, config.table, config.sequences), dtype=object)
    feature_ids = np.array([str(i) for i in table.ids(axis="observation")], dtype=object)
    counts = sample_by_feature(table)
    sample_ids = np.array([str(s) for s in table.ids(axis="sample")], dtype=object)
    shallow = np.zeros(len(sample_ids), dtype=bool)
    if config.rarefy_depth:
        depth = config.rarefy_depth
        counts, deep = rarefy(counts, depth, sample_ids, source=str(config.table))
        shallow = ~deep
        if not keep_all and not deep.any():
            raise DataError(f"No sample of {config.table} has --rarefy-depth {depth} reads.")
        if keep_all and shallow.any():
            warnings.warn(
                f"{int(shallow.sum())} samples of {config.table} have fewer than the model's "
                f"rarefaction depth of {depth} reads (e.g. '{sample_ids[shallow][0]}'); they are "
                "predicted unrarefied.",
                stacklevel=2,
            )

    text_columns = [*config.categorical_columns, *extra_columns]
    for optional in (config.stratify_by, config.normalize_by):
        if optional:
            text_columns.append(optional)
    if classifier and config.metadata_column:
        text_columns.append(config.metadata_column)

    if config.metadata is None:
        if target_required or text_columns:
            raise DataError("--metadata is required for the target and categorical columns.")
        metadata = pd.DataFrame(index=pd.Index(sample_ids, name="sample_id"))
    else:
        metadata = read_metadata(config.metadata, text_columns)
        for col in dict.fromkeys(text_columns):
            require_column(metadata, col, config.metadata, "Column")
        if target_required:
            if not config.metadata_column:
                raise DataError("--metadata-column is required to train.")
            require_column(metadata, config.metadata_column, config.metadata, "--metadata-column")

    keep = np.ones(len(sample_ids), dtype=bool)
    if config.metadata is not None:
        in_meta = np.isin(sample_ids, metadata.index.to_numpy())
        n_meta_only = len(set(metadata.index) - set(sample_ids))
        if n_meta_only:
            log.info("%d samples of %s are not in %s.", n_meta_only, config.metadata, config.table)
        if not in_meta.any():
            raise DataError(
                f"No sample IDs are shared by {config.table} and {config.metadata} "
                f"(table: '{sample_ids[0]}', metadata: '{metadata.index[0]}')."
            )
        if target_required:
            _drop(f"in {config.table} but not in {config.metadata}", int((~in_meta).sum()))
            keep &= in_meta
        elif not in_meta.all():
            warnings.warn(
                f"{int((~in_meta).sum())} samples of {config.table} are not in {config.metadata} "
                f"(e.g. '{sample_ids[~in_meta][0]}'); their metadata inputs are unknown.",
                stacklevel=2,
            )
    if not keep_all:  # for prediction every sample of the table is kept
        _drop(f"fewer than --rarefy-depth {config.rarefy_depth} reads", int((shallow & keep).sum()))
        keep &= ~shallow
        empty = np.asarray(counts.sum(axis=1)).ravel() == 0
        _drop("no reads", int((empty & keep).sum()))
        keep &= ~empty

    metadata = metadata.reindex(sample_ids)
    target = None
    if target_required:
        raw = metadata[config.metadata_column]
        if classifier:
            values = raw.astype("string")
            missing = values.isna().to_numpy() | (values.fillna("").str.strip() == "").to_numpy()
            target = values.fillna("").to_numpy(dtype=str)
        else:
            numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            missing = ~np.isfinite(numeric)
            target = numeric
        _drop(f"empty or non-numeric '{config.metadata_column}'", int((missing & keep).sum()))
        keep &= ~missing

    if not keep.any():
        raise DataError(f"No usable samples left in {config.table} after filtering (see the log).")
    rows = np.flatnonzero(keep)
    counts = counts[rows]
    used = np.flatnonzero(np.asarray((counts != 0).sum(axis=0)).ravel())
    counts = counts[:, used].tocsr()
    counts.sort_indices()
    sequences = sequences[used]
    return Dataset(
        feature_ids=feature_ids[used],
        sample_ids=sample_ids[rows],
        counts=counts,
        sequences=sequences,
        tokens=tokenize(list(sequences), config.max_bp),
        metadata=metadata.iloc[rows],
        target=None if target is None else target[rows],
    )
