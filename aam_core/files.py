"""Output files: atomic writes and the output-directory check.

Writes go to a temporary file in the same folder, then a rename: a crash or a full disk never
leaves a half-written result, and a previous file of that name stays intact until the new one is
complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from aam_core.errors import ConfigError


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the result to ``path`` (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as out:
            out.write(text)

    return write_atomic(path, write)


def write_tsv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """A TSV without the index (prediction files, fold tables)."""
    return write_text_atomic(path, frame.to_csv(sep="\t", index=False))


def check_output_dir(path: str | os.PathLike, force: bool) -> Path:
    """Refuse a directory that already holds something unless ``force``; touches nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output-dir {path} exists and is not a directory.")
    if path.is_dir() and any(path.iterdir()) and not force:
        what = "a run (config.json)" if (path / "config.json").exists() else "files"
        raise ConfigError(
            f"--output-dir {path} already holds {what}; pass --force to overwrite it or choose "
            "another directory."
        )
    return path
