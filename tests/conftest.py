"""Shared fixtures: a tiny synthetic dataset, a reference pooling, the oral-age folder and a
fresh plugin registry per test.

Fixtures
--------
``make_tiny_data(**options) -> TinyData``
    Writes a synthetic BIOM table and metadata TSV to a new folder under ``tmp_path``.
``tiny_data -> TinyData``
    ``make_tiny_data()`` with the defaults: 30 samples × 40 ASVs, seed 0.
``write_biom(path, counts, feature_ids, sample_ids, fmt='hdf5') -> Path``
    Writes ``counts [samples, features]`` as an HDF5 or JSON BIOM table.
``write_tsv(path, header, rows, types=None) -> Path``
    Writes a TSV; ``types`` adds a ``#q2:types`` row.
``masked_mean_pool -> pool(h [B, S, D], mask [B, S]) -> [B, D]``
    Mean over present positions; zeros for a row with none.
``oral_age -> OralAgePaths``
    The real dataset in ``../shared/data/oral-age``; skips the test when it is absent.
``fresh_registry -> PluginRegistry``
    A new registry over the ``aam`` entry-point group, unshared with ``aam_core.registry()``.

Every test session runs torch on one thread (``_one_torch_thread``, autouse).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import biom
import h5py
import numpy as np
import pytest
import torch

from aam_core.config import DataConfig
from aam_core.plugins import PluginRegistry

SITES = ("cheek", "gum", "tongue")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; with several, a busy machine (parallel test
    runs, other jobs) makes each small matmul wait on the others and a forward pass ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@attrs.frozen(eq=False)
class TinyData:
    """A synthetic dataset on disk plus the arrays it was written from.

    ``counts`` is ``int [samples, features]`` in the order of ``sample_ids`` and ``sequences``
    (the feature IDs). Every sample has at least one ASV, every ASV is in at least one sample and
    the counts within a sample are distinct, so "the most abundant" is never a tie.
    """

    folder: Path
    table: Path
    metadata: Path
    sample_ids: list[str]
    sequences: list[str]
    counts: np.ndarray
    age: np.ndarray
    site: np.ndarray

    def config(self, **overrides) -> DataConfig:
        """A :class:`DataConfig` over these files, predicting ``age``."""
        values = {
            "table": str(self.table),
            "metadata": str(self.metadata),
            "metadata_column": "age",
        }
        return DataConfig(**{**values, **overrides})


def random_sequences(rng: np.random.Generator, n: int, low: int = 20, high: int = 40) -> list[str]:
    """``n`` distinct random ACGT sequences of ``low`` to ``high`` bases."""
    out: dict[str, None] = {}
    while len(out) < n:
        length = int(rng.integers(low, high + 1))
        out["".join(rng.choice(list("ACGT"), size=length))] = None
    return list(out)


def _write_biom(path: Path, counts: np.ndarray, feature_ids, sample_ids, fmt: str = "hdf5") -> Path:
    """Write ``counts [samples, features]`` as a BIOM table (``hdf5`` or ``json``)."""
    table = biom.Table(
        np.asarray(counts, dtype=float).T,
        [str(f) for f in feature_ids],
        [str(s) for s in sample_ids],
    )
    if fmt == "hdf5":
        with h5py.File(path, "w") as handle:
            table.to_hdf5(handle, "aam tests")
    elif fmt == "json":
        path.write_text(table.to_json("aam tests"))
    else:
        raise ValueError(f"unknown BIOM format {fmt!r}")
    return path


def _write_tsv(
    path: Path, header: list[str], rows: list[list[object]], types: list[str] | None = None
) -> Path:
    """A tab-separated file; ``types`` adds a ``#q2:types`` row under the header."""
    lines = ["\t".join(header)]
    if types is not None:
        lines.append("\t".join(["#q2:types", *types]))
    lines += ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def make_tiny_data(tmp_path: Path) -> Callable[..., TinyData]:
    """A factory: ``make_tiny_data(n_samples=30, n_features=40, seed=0, max_per_sample=15,
    id_header='sample-id', q2_types=True, fmt='hdf5', name='tiny')``."""

    def make(
        n_samples: int = 30,
        n_features: int = 40,
        seed: int = 0,
        max_per_sample: int = 15,
        id_header: str = "sample-id",
        q2_types: bool = True,
        fmt: str = "hdf5",
        name: str = "tiny",
    ) -> TinyData:
        rng = np.random.default_rng(seed)
        sequences = random_sequences(rng, n_features)
        counts = np.zeros((n_samples, n_features), dtype=np.int64)
        for row in range(n_samples):
            k = int(rng.integers(1, max_per_sample + 1))
            present = rng.choice(n_features, size=k, replace=False)
            counts[row, present] = rng.choice(np.arange(1, 500), size=k, replace=False)
        for col in np.flatnonzero(counts.sum(axis=0) == 0):  # every ASV in some sample
            row = int(rng.integers(n_samples))
            counts[row, col] = counts[row].max() + 1
        sample_ids = [f"S{i:03d}" for i in range(n_samples)]
        age = np.round(rng.uniform(18.0, 80.0, size=n_samples), 1)
        site = np.array([SITES[i] for i in rng.integers(len(SITES), size=n_samples)])

        folder = tmp_path / name
        folder.mkdir()
        table = _write_biom(
            folder / ("table.biom" if fmt == "hdf5" else "table.json.biom"),
            counts,
            sequences,
            sample_ids,
            fmt,
        )
        metadata = _write_tsv(
            folder / "metadata.tsv",
            [id_header, "age", "site"],
            [[s, a, c] for s, a, c in zip(sample_ids, age, site, strict=True)],
            ["numeric", "categorical"] if q2_types else None,
        )
        return TinyData(folder, table, metadata, sample_ids, sequences, counts, age, site)

    return make


@pytest.fixture
def write_biom() -> Callable[..., Path]:
    """``write_biom(path, counts [samples, features], feature_ids, sample_ids, fmt='hdf5'|'json')``."""
    return _write_biom


@pytest.fixture
def write_tsv() -> Callable[..., Path]:
    """``write_tsv(path, header, rows, types=None)``; ``types`` adds a ``#q2:types`` row."""
    return _write_tsv


@pytest.fixture
def tiny_data(make_tiny_data) -> TinyData:
    """30 samples × 40 random ASVs (20–40 bp) with ``age`` and ``site``; seed 0."""
    return make_tiny_data()


def _masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weight = mask.unsqueeze(-1).to(h.dtype)
    return (h * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)


@pytest.fixture
def masked_mean_pool() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``pool(h [B, S, D], mask [B, S]) -> [B, D]``: mean over present ASVs, zeros for none."""
    return _masked_mean


@attrs.frozen
class OralAgePaths:
    folder: Path
    table: Path
    metadata: Path
    tree: Path
    readme: Path


ORAL_AGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"


@pytest.fixture
def oral_age() -> OralAgePaths:
    """The oral-age dataset next to the repository; the test is skipped without it."""
    paths = OralAgePaths(
        folder=ORAL_AGE,
        table=ORAL_AGE / "table.biom",
        metadata=ORAL_AGE / "metadata.tsv",
        tree=ORAL_AGE / "tree.nwk",
        readme=ORAL_AGE / "README.md",
    )
    if not (paths.table.is_file() and paths.metadata.is_file()):
        pytest.skip(f"oral-age dataset not found at {ORAL_AGE}")
    return paths


@pytest.fixture
def fresh_registry() -> PluginRegistry:
    """A new plugin registry over the ``aam`` group; nothing is shared with other tests."""
    return PluginRegistry()
