"""Metadata TSV in QIIME 2 conventions, read through scikit-bio's ``SampleMetadata``.

Every QIIME ID header is accepted, the ``#q2:types`` row is honoured, whitespace and BOM are
stripped. Categorical columns are read as text, so ``11052`` stays ``"11052"``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from skbio.metadata import SampleMetadata
from skbio.metadata.io import MetadataFileError

from aam_core.errors import DataError


def _first_paragraph(exc: Exception) -> str:
    return str(exc).strip().split("\n\n")[0].replace("\n", " ")


def read_metadata(path: str | Path, text_columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The metadata table indexed by sample ID; ``text_columns`` are kept as strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Metadata file not found: {path}")
    wanted = list(dict.fromkeys(c for c in text_columns if c))
    try:
        frame = SampleMetadata.load(
            str(path), column_types={c: "categorical" for c in wanted}
        ).to_dataframe()
    except MetadataFileError as exc:
        message = _first_paragraph(exc)
        if "specified in `column_types`" in message:
            available = ", ".join(SampleMetadata.load(str(path)).columns)
            missing = [c for c in wanted if c not in available.split(", ")]
            raise DataError(
                f"Column '{missing[0]}' is not in {path}. Available: {available}."
            ) from None
        raise DataError(f"{path}: {message}") from None
    frame.index = frame.index.astype(str)
    frame.index.name = "sample_id"
    return frame


def require_column(frame: pd.DataFrame, column: str, path: str | Path, flag: str) -> None:
    """Fail with the available columns when ``column`` is not in the metadata."""
    if column not in frame.columns:
        available = ", ".join(frame.columns) or "(none)"
        raise DataError(f"{flag} '{column}' is not a column of {path}. Available: {available}.")
