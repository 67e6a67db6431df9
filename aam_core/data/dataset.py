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
from aam_core.errors import ConfigError, DataError

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


def _drop(dropped: list[str], reason: str, count: int) -> None:
    """Log (and record in ``dropped``) samples left out for ``reason``."""
    if count:
        log.info("Dropped %d samples: %s.", count, reason)
        dropped.append(f"{count} {reason}")


def _no_shared_samples(config: DataConfig, sample_ids: np.ndarray, metadata: pd.DataFrame) -> str:
    """Why no table sample is in the metadata, with a hint when the IDs differ only by spaces or
    by case."""
    message = (
        f"No sample IDs are shared by {config.table} and {config.metadata} "
        f"(table: '{sample_ids[0]}', metadata: '{metadata.index[0]}')"
    )
    known = set(metadata.index)
    spaced = [s for s in sample_ids if s != s.strip() and s.strip() in known]
    if spaced:
        return (
            f"{message}: the table's IDs carry leading or trailing spaces (e.g. '{spaced[0]}'); "
            "remove the spaces from the table's sample IDs."
        )
    folded = {m.casefold(): m for m in known}
    cased = [s for s in sample_ids if s.strip().casefold() in folded]
    if cased:
        other = folded[cased[0].strip().casefold()]
        return (
            f"{message}: IDs differ only in upper/lower case (table '{cased[0]}', metadata "
            f"'{other}'); sample IDs are case-sensitive, make them match."
        )
    return message + "."


def _no_target(config: DataConfig, raw: pd.Series, candidates: np.ndarray) -> str:
    """Why no sample has a usable target: the column's values among the samples that would
    otherwise be kept."""
    column = config.metadata_column
    values = raw.to_numpy()[candidates]
    text = pd.Series(values, dtype="string").fillna("").str.strip()
    present = list(dict.fromkeys(text[text != ""]))
    where = f"--metadata-column '{column}' of {config.metadata}"
    if not present:
        return f"{where} has no numeric value: it is empty for every sample of {config.table}."
    examples = ", ".join(f"'{v}'" for v in present[:3])
    return (
        f"{where} has no numeric value for the samples of {config.table} (e.g. {examples}); write "
        "plain numbers without units, or pass --classifier to predict it as classes."
    )


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
    if target_required and config.metadata_column in config.categorical_columns:
        raise ConfigError(
            f"--categorical-columns includes '{config.metadata_column}', the --metadata-column "
            "being predicted: the model would read the answer from its input. Remove it from "
            "--categorical-columns."
        )
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

    # Columns read as text, with the flag that names each (for a missing one).
    text_columns: dict[str, str] = {}
    for column in config.categorical_columns:
        text_columns.setdefault(column, "--categorical-columns")
    for column in filter(None, extra_columns):
        text_columns.setdefault(column, "Column")
    for column, flag in ((config.stratify_by, "--stratify-by"), (config.normalize_by, "--normalize-by")):
        if column:
            text_columns.setdefault(column, flag)
    if classifier and config.metadata_column:
        text_columns.setdefault(config.metadata_column, "--metadata-column")

    if config.metadata is None:
        if target_required or text_columns:
            raise DataError("--metadata is required for the target and categorical columns.")
        metadata = pd.DataFrame(index=pd.Index(sample_ids, name="sample_id"))
    else:
        metadata = read_metadata(config.metadata, text_columns)
        for column, flag in text_columns.items():
            require_column(metadata, column, config.metadata, flag)
        if target_required:
            if not config.metadata_column:
                raise DataError("--metadata-column is required to train.")
            require_column(metadata, config.metadata_column, config.metadata, "--metadata-column")

    keep = np.ones(len(sample_ids), dtype=bool)
    dropped: list[str] = []
    if config.metadata is not None:
        in_meta = np.isin(sample_ids, metadata.index.to_numpy())
        if not in_meta.any():  # the error alone, no log line about the mismatch before it
            raise DataError(_no_shared_samples(config, sample_ids, metadata))
        n_meta_only = len(set(metadata.index) - set(sample_ids))
        if n_meta_only:
            log.info("%d samples of %s are not in %s.", n_meta_only, config.metadata, config.table)
        if target_required:
            _drop(dropped, f"in {config.table} but not in {config.metadata}", int((~in_meta).sum()))
            keep &= in_meta
        elif not in_meta.all():
            warnings.warn(
                f"{int((~in_meta).sum())} samples of {config.table} are not in {config.metadata} "
                f"(e.g. '{sample_ids[~in_meta][0]}'); their metadata inputs are unknown.",
                stacklevel=2,
            )
    if not keep_all:  # for prediction every sample of the table is kept
        _drop(dropped, f"fewer than --rarefy-depth {config.rarefy_depth} reads", int((shallow & keep).sum()))
        keep &= ~shallow
        empty = np.asarray(counts.sum(axis=1)).ravel() == 0
        if empty.all():
            raise DataError(f"Every sample of {config.table} has no reads (all its counts are 0).")
        _drop(dropped, "no reads", int((empty & keep).sum()))
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
        if keep.any() and (missing | ~keep).all():
            raise DataError(_no_target(config, raw, keep))
        _drop(dropped, f"empty or non-numeric '{config.metadata_column}'", int((missing & keep).sum()))
        keep &= ~missing
        classes = sorted(set(target[keep])) if classifier else []
        if len(classes) == 1:
            raise DataError(
                f"--metadata-column '{config.metadata_column}' of {config.metadata} has one class "
                f"among the usable samples ('{classes[0]}'); a classifier needs at least 2."
            )

    if not keep.any():
        raise DataError(f"No usable samples left in {config.table}: dropped {'; '.join(dropped)}.")
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
