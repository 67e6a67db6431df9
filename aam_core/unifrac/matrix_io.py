"""Distance matrices on disk: written stripe by stripe, read back matched to sample IDs.

The output extension picks the format:

- ``.tsv``: scikit-bio's ``DistanceMatrix`` text (``lsmat``): a header of IDs after a tab, then
  one row per sample, values with 17 decimals (see :mod:`aam_core.unifrac.decimals`).
- ``.h5`` / ``.hdf5``: Striped UniFrac's layout (what ``ssu -r hdf5_fp64`` writes): datasets
  ``matrix`` (float64, N×N), ``order`` (sample IDs, variable-length strings), ``format``
  (``BDSM``) and ``version`` (``2020.12``).
- ``.npy``: the float64 N×N array, with the sample IDs one per line in a sibling
  ``<name>.ids.txt`` (``dm.npy`` → ``dm.ids.txt``).

The matrix never has to be in memory: stripes of the upper triangle are written where they
belong and mirrored (``.h5`` and ``.tsv`` through a temporary ``.npy`` memory map next to the
output, whose rows are copied out as soon as they are complete). Every file is written under a
temporary name in the output's directory and renamed when complete.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from aam_core.data.paths import input_file
from aam_core.errors import ConfigError, DataError, library_message
from aam_core.files import write_atomic
from aam_core.unifrac.decimals import format_rows

FORMATS = {".h5": "h5", ".hdf5": "h5", ".npy": "npy", ".tsv": "tsv"}
Stripes = Iterable[tuple[int, np.ndarray]]
_TSV_CELLS = 1 << 18  # values formatted at once (~30 MB of scratch)


def output_format(path: str | os.PathLike) -> str:
    """The format named by ``path``'s extension; checks the folder exists. Writes nothing."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        choices = ", ".join(sorted(FORMATS))
        raise ConfigError(f"--output {path}: unknown extension '{path.suffix}'. Available: {choices}.")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"--output {path}: the directory {folder} does not exist.")
    if path.is_dir():
        raise ConfigError(f"--output {path} is a directory; name a file.")
    return kind


def ids_path(npy_path: str | os.PathLike) -> Path:
    """Where the sample IDs of a ``.npy`` matrix live: ``dm.npy`` → ``dm.ids.txt``."""
    path = Path(npy_path)
    return path.with_name(path.stem + ".ids.txt")


def fill(target, stripes: Stripes) -> None:
    """Put upper-triangle stripes and their mirror into ``target`` (array, memory map)."""
    for _ in filled_rows(target, stripes):
        pass


def filled_rows(target, stripes: Stripes) -> Iterator[tuple[int, int]]:
    """:func:`fill`, yielding ``(i0, i1)`` as rows ``i0:i1`` become complete (earlier stripes
    hold their left part)."""
    for i0, values in stripes:
        i1 = i0 + values.shape[0]
        target[i0:i1, i0:] = values
        target[i0:, i0:i1] = values.T
        yield i0, i1


def write_matrix(path: str | os.PathLike, sample_ids: list[str], stripes: Stripes) -> Path:
    """Write the stripes of an ``N×N`` matrix (``(i0, values[r, N-i0])``, upper triangle) in the
    format ``path``'s extension names."""
    kind = output_format(path)
    path = Path(path)
    n = len(sample_ids)

    def write(tmp: Path) -> None:
        if kind == "npy":
            matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n, n))
            fill(matrix, stripes)
            matrix.flush()
            del matrix
            text = "".join(f"{s}\n" for s in sample_ids)
            write_atomic(ids_path(path), lambda tmp_ids: tmp_ids.write_text(text))
            return
        # Mirrored stripes write columns as well as rows: cheap on a memory map, not in an HDF5
        # dataset or a text file. Fill a scratch map; copy each row out once it is complete.
        scratch = tmp.with_name(tmp.name + ".npy")
        try:
            matrix = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.float64, shape=(n, n))
            (_write_h5 if kind == "h5" else _write_tsv)(tmp, sample_ids, matrix, filled_rows(matrix, stripes))
            del matrix
        finally:
            scratch.unlink(missing_ok=True)

    return write_atomic(path, write)


def _write_h5(path: Path, sample_ids: list[str], matrix: np.ndarray, rows: Iterator[tuple[int, int]]) -> None:
    import h5py

    n = len(sample_ids)
    ascii_only = all(s.isascii() for s in sample_ids)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("format", data=np.array([b"BDSM"]))
        handle.create_dataset("version", data=np.array([b"2020.12"]))
        order_type = h5py.string_dtype("ascii" if ascii_only else "utf-8")
        handle.create_dataset("order", data=np.array(sample_ids, dtype=object), dtype=order_type)
        target = handle.create_dataset("matrix", shape=(n, n), dtype="f8")
        for i0, i1 in rows:
            target[i0:i1] = matrix[i0:i1]


def _write_tsv(path: Path, sample_ids: list[str], matrix: np.ndarray, rows: Iterator[tuple[int, int]]) -> None:
    labels = [f"{s}\t".encode() for s in sample_ids]
    with open(path, "wb") as out:
        out.write(("\t" + "\t".join(sample_ids) + "\n").encode())
        for i0, i1 in rows:
            step = max(1, _TSV_CELLS // max(len(sample_ids), 1))
            for lo in range(i0, i1, step):
                hi = min(lo + step, i1)
                for label, row in zip(labels[lo:hi], format_rows(matrix[lo:hi]), strict=True):
                    out.write(label)
                    out.write(row)


def _read_ids(npy_path: Path) -> list[str]:
    path = ids_path(npy_path)
    if not path.is_file():
        raise DataError(f"{npy_path} needs its sample IDs in {path}, which is missing.")
    return path.read_text().splitlines()


def _read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        ids = header[1:]
        rows: list[np.ndarray] = []
        for number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            label, _, rest = line.rstrip("\n").partition("\t")
            if len(rows) >= len(ids) or label != ids[len(rows)]:
                raise DataError(f"{path}: line {number} is sample '{label[:40]}', not the next header ID.")
            try:
                rows.append(np.array(rest.split("\t"), dtype=np.float64))
            except ValueError:
                raise DataError(f"{path}: line {number} holds a value that is not a number.") from None
            if len(rows[-1]) != len(ids):
                raise DataError(f"{path}: line {number} has {len(rows[-1])} values for {len(ids)} samples.")
    if len(rows) != len(ids):
        raise DataError(f"{path} is not square: {len(rows)} rows for {len(ids)} samples.")
    return ids, np.vstack(rows) if rows else np.zeros((0, 0))


def read_distance_matrix(path: str | os.PathLike, sample_ids: list[str]) -> np.ndarray:
    """A precomputed distance matrix (``.tsv``, ``.h5``/``.hdf5`` or ``.npy`` + ``.ids.txt``)
    as float64 ``[len(sample_ids), len(sample_ids)]`` in the order of ``sample_ids``."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown distance-matrix extension '{path.suffix}'. Available: {', '.join(sorted(FORMATS))}.")
    input_file(path, "Distance matrix", "matrix")
    try:
        if kind == "npy":
            ids = _read_ids(path)
            return _matched(path, ids, np.load(path, mmap_mode="r", allow_pickle=False), sample_ids)
        if kind == "h5":
            import h5py

            with h5py.File(path, "r") as handle:
                ids = [s.decode() if isinstance(s, bytes) else str(s) for s in handle["order"][:]]
                return _matched(path, ids, handle["matrix"], sample_ids)
        ids, matrix = _read_tsv(path)
        return _matched(path, ids, matrix, sample_ids)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable {kind} distance matrix: {library_message(exc)}") from None


def _matched(path: Path, ids: list[str], matrix, wanted) -> np.ndarray:
    """``matrix`` (an array, memory map or HDF5 dataset) restricted to ``wanted``, checked; only
    the rows of wanted samples are read."""
    wanted = list(wanted)
    if len(matrix.shape) != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(ids):
        raise DataError(f"{path} is not a square matrix over its {len(ids)} sample IDs (shape {matrix.shape}).")
    position = {s: i for i, s in enumerate(ids)}
    if len(position) != len(ids):
        raise DataError(f"{path} lists a sample ID more than once.")
    missing = [s for s in wanted if s not in position]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(wanted)} samples are not in {path} (e.g. '{missing[0][:40]}')."
        )
    index = np.array([position[s] for s in wanted], dtype=np.int64)
    needed = np.unique(index)
    rows = np.asarray(matrix[needed], dtype=np.float64)[np.searchsorted(needed, index)]
    values = rows[:, index]
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path} holds NaN or infinite distances between the requested samples.")
    if values.min(initial=0.0) < 0:
        i, j = np.unravel_index(int(np.argmin(values)), values.shape)
        raise DataError(
            f"{path} holds negative distances (e.g. {values[i, j]} between '{wanted[i]}' and "
            f"'{wanted[j]}'); distances are 0 or more."
        )
    if not np.allclose(values, values.T, rtol=0.0, atol=1e-6):
        raise DataError(f"{path} is not symmetric (differences above 1e-6).")
    return values


def iter_progress(stripes: Iterator[tuple[int, np.ndarray]], n: int) -> Iterator[tuple[int, np.ndarray]]:
    """The stripes with a progress bar (pairs done) when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from stripes
        return
    from tqdm import tqdm

    with tqdm(total=n * (n + 1) // 2, unit="pair", unit_scale=True, desc="UniFrac", leave=False) as bar:
        for i0, values in stripes:
            bar.update(values.shape[0] * values.shape[1] - values.shape[0] * (values.shape[0] - 1) // 2)
            yield i0, values
