"""Output files: atomic writes.

Writes go to a temporary file in the same folder, then a rename: a crash or a full disk never
leaves a half-written result, and a previous file of that name stays intact until the new one is
complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is only a type here: `aam unifrac` writes through this module
    import pandas as pd

TMP_SUFFIX = ".aamtmp"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None], *, durable: bool = False) -> Path:
    """Call ``write(tmp_path)`` then move the result to ``path`` (parents are created).

    ``durable`` also fsyncs the directory after the rename, so the new name survives a power
    loss (``write`` should fsync the file itself). Temporary names end in :data:`TMP_SUFFIX`;
    :func:`remove_stale_temporaries` clears those a killed process left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files of interrupted atomic writes below ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as out:
            out.write(text)

    return write_atomic(path, write)


def write_tsv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """A TSV without the index (prediction files, fold tables)."""
    return write_text_atomic(path, frame.to_csv(sep="\t", index=False))

