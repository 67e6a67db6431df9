"""Metadata TSV in QIIME 2 conventions, read through scikit-bio's ``SampleMetadata``.

Every QIIME ID header is accepted, the ``#q2:types`` row is honoured, whitespace and BOM are
stripped. Categorical columns are read as text, so ``11052`` stays ``"11052"``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from skbio.metadata import SampleMetadata
from skbio.metadata.io import MetadataFileError

from aam_core.data.paths import check_kind, input_file
from aam_core.errors import DataError, library_message


def read_metadata(
    path: str | Path, text_columns: Mapping[str, str] | Sequence[str] = ()
) -> pd.DataFrame:
    """The metadata table indexed by sample ID; ``text_columns`` are kept as strings. Given as
    ``{column: flag}``, a missing column is reported under the flag that named it.

    A file that is plainly something else (a BIOM table, a spreadsheet, a comma-separated export)
    is refused naming the mix-up; scikit-bio's own complaints are shown whole, on one line."""
    path = input_file(path, "Metadata file", "metadata")
    check_kind(path, "metadata")
    if not isinstance(text_columns, Mapping):
        text_columns = {c: "Column" for c in text_columns}
    wanted = [c for c in text_columns if c]
    try:
        frame = _load(path, wanted)
    except (MetadataFileError, ValueError) as exc:
        message = library_message(exc)
        if "specified in `column_types`" in message:
            plain = _load(path, [])
            for column in wanted:
                require_column(plain, column, path, text_columns[column])
        raise DataError(f"{path}: {message}") from None
    frame.index = frame.index.astype(str)
    frame.index.name = "sample_id"
    return frame


def _load(path: Path, text_columns: list[str]) -> pd.DataFrame:
    types = {c: "categorical" for c in text_columns}
    return SampleMetadata.load(str(path), column_types=types).to_dataframe()


def require_column(frame: pd.DataFrame, column: str, path: str | Path, flag: str) -> None:
    """Fail with the available columns when ``column`` is not in the metadata."""
    if column not in frame.columns:
        available = ", ".join(frame.columns) or "(none)"
        close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1)
        close += [str(c) for c in frame.columns if str(c).lower() == column.strip().lower()]
        hint = f" Did you mean '{close[-1]}'?" if close else ""
        raise DataError(f"{flag} '{column}' is not a column of {path}. Available: {available}.{hint}")
