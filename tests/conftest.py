"""Shared fixtures: a tiny synthetic dataset, a reference pooling, the oral-age folder and a
fresh plugin registry per test.

Fixtures
--------
``make_tiny_data(**options) -> TinyData``
    Writes a synthetic BIOM table and metadata TSV to a new folder under ``tmp_path``.
``module_tiny_data(**options) -> TinyData``
    The same, for module-scoped fixtures.
``tiny_data -> TinyData``
    ``make_tiny_data()`` with the defaults: 30 samples × 40 ASVs, seed 0.
``write_biom(path, counts, feature_ids, sample_ids, fmt='hdf5') -> Path``
    Writes ``counts [samples, features]`` as an HDF5 or JSON BIOM table.
``write_tsv(path, header, rows, types=None) -> Path``
    Writes a TSV; ``types`` adds a ``#q2:types`` row.
``write_tree(path, tips, seed=0) -> Path``
    Writes a random rooted binary Newick tree over ``tips`` (branch lengths 0.01–0.3).
``masked_mean_pool -> pool(h [B, S, D], mask [B, S]) -> [B, D]``
    Mean over present positions; zeros for a row with none.
``oral_age -> OralAgePaths``
    The real dataset in ``../shared/data/oral-age``; skips the test when it is absent.
``fresh_registry -> PluginRegistry``
    A new registry over the ``aam`` entry-point group, unshared with ``aam_core.registry()``.
``tiny_model -> dict``
    Options of a tiny, fast model (D=16, 2 heads, 1 layer, 1 epoch, batch 8, 40 bp).
``as_flags(options) -> list[str]``
    ``{'embedding_dim': 16, 'force': True}`` → ``['--embedding-dim', '16', '--force']``.
``run_cli(*args) -> CliResult``
    Runs ``aam`` as the console script does; returns ``code``, ``out`` and ``err``.
``start_aam(*args) -> subprocess.Popen``
    Starts ``aam`` in a separate process on one thread (stdout and stderr piped, as text): for
    tests that send it real signals.
``read_tensorboard(run_dir) -> EventAccumulator``
    The run's ``tensorboard/`` events, loaded in full (``.Scalars(tag)``, ``.Tags()``).
``recorded_plots -> list[PlotCall]``
    Replaces training's predicted-vs-actual PNG and TensorBoard figure with a recorder, and the
    training-curves PNG with nothing (fast); each entry holds the ``actual`` and ``predicted``
    values that would have been drawn.

Every test session runs torch on one thread (``_one_torch_thread``, autouse).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import attrs
import biom
import h5py
import numpy as np
import pandas as pd
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

    def with_column(self, name: str, values: list[str]) -> TinyData:
        """Rewrite the metadata with one more column (``sample-id``, age, site, ``name``)."""
        rows = [
            [s, a, c, v]
            for s, a, c, v in zip(self.sample_ids, self.age, self.site, values, strict=True)
        ]
        _write_tsv(self.metadata, ["sample-id", "age", "site", name], rows)
        return self

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


def write_tiny_data(
    folder: Path,
    n_samples: int = 30,
    n_features: int = 40,
    seed: int = 0,
    max_per_sample: int = 15,
    id_header: str = "sample-id",
    q2_types: bool = True,
    fmt: str = "hdf5",
) -> TinyData:
    """Write a synthetic table and metadata into ``folder`` (created)."""
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

    folder.mkdir(parents=True, exist_ok=True)
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


@pytest.fixture
def make_tiny_data(tmp_path: Path) -> Callable[..., TinyData]:
    """A factory: ``make_tiny_data(n_samples=30, n_features=40, seed=0, max_per_sample=15,
    id_header='sample-id', q2_types=True, fmt='hdf5', name='tiny')``."""

    def make(name: str = "tiny", **options) -> TinyData:
        folder = tmp_path / name
        if folder.exists():
            raise FileExistsError(folder)
        return write_tiny_data(folder, **options)

    return make


@pytest.fixture(scope="module")
def module_tiny_data(tmp_path_factory) -> Callable[..., TinyData]:
    """``make_tiny_data`` for data shared by the tests of one module (``scope='module'``)."""
    return lambda **options: write_tiny_data(tmp_path_factory.mktemp("tiny"), **options)


def random_newick(tips: list[str], seed: int = 0) -> str:
    """A random rooted binary tree over ``tips`` with branch lengths in (0.01, 0.3)."""
    rng = np.random.default_rng(seed)
    nodes = list(tips)
    while len(nodes) > 1:
        i, j = sorted(rng.choice(len(nodes), size=2, replace=False))
        a, b = nodes[i], nodes[j]
        la, lb = rng.uniform(0.01, 0.3, size=2)
        nodes = [n for k, n in enumerate(nodes) if k not in (i, j)] + [f"({a}:{la:.4f},{b}:{lb:.4f})"]
    return nodes[0] + ";"


@pytest.fixture
def write_tree() -> Callable[..., Path]:
    """``write_tree(path, tips, seed=0)``: a random rooted binary Newick tree over ``tips``."""

    def write(path: Path, tips: list[str], seed: int = 0) -> Path:
        Path(path).write_text(random_newick(list(tips), seed) + "\n")
        return Path(path)

    return write


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


TINY_MODEL = {
    "embedding_dim": 16,
    "attention_heads": 2,
    "attention_layers": 1,
    "epochs": 1,
    "batch_size": 8,
    "max_bp": 40,
}


@pytest.fixture
def tiny_model() -> dict[str, object]:
    """Options (API keyword names) of a tiny model that trains in well under a second."""
    return dict(TINY_MODEL)


def _as_flags(options: dict[str, object]) -> list[str]:
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags += [flag, ",".join(value) if isinstance(value, list | tuple) else str(value)]
    return flags


@pytest.fixture
def as_flags() -> Callable[[dict[str, object]], list[str]]:
    """``as_flags({'embedding_dim': 16, 'force': True})`` → ``['--embedding-dim', '16', '--force']``."""
    return _as_flags


@attrs.frozen
class CliResult:
    """Exit status and captured output of one ``aam`` invocation."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch) -> Callable[..., CliResult]:
    """``run_cli('train', '--table', path, ...)``: ``aam_core.cli.main`` as the console script
    calls it; an uncaught exception propagates (so a traceback fails the test)."""
    from aam_core.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@attrs.frozen(eq=False)
class PlotCall:
    """What one predicted-vs-actual figure would have shown."""

    actual: np.ndarray
    predicted: np.ndarray


@pytest.fixture
def recorded_plots(monkeypatch) -> list[PlotCall]:
    """Training's predicted-vs-actual figures (PNG and TensorBoard) replaced by a recorder.

    Drawing them costs most of a tiny run; tests that do not look at the PNG use this to run
    several times faster, and can check the plotted values. No PNG is written."""
    import matplotlib.figure

    from aam_core.training import supervised

    calls: list[PlotCall] = []

    def record(actual, predicted) -> None:
        calls.append(PlotCall(np.asarray(actual), np.asarray(predicted)))

    def figure(actual, predicted, title, **keywords):  # noqa: ARG001 - the plot function's signature
        record(actual, predicted)
        return matplotlib.figure.Figure(figsize=(0.5, 0.5), dpi=20)

    def save(actual, predicted, path, title, **keywords):  # noqa: ARG001 - the plot function's signature
        record(actual, predicted)
        return Path(path)

    def curves(history, path, metric, **keywords):  # noqa: ARG001 - the plot function's signature
        return Path(path)

    monkeypatch.setattr(supervised, "predicted_vs_actual_figure", figure)
    monkeypatch.setattr(supervised, "save_predicted_vs_actual", save)
    monkeypatch.setattr(supervised, "save_training_curves", curves)
    return calls


@pytest.fixture
def start_aam() -> Callable[..., subprocess.Popen]:
    """``start_aam('train', ...)``: ``python -m aam_core.cli`` in a new process, one thread."""
    started: list[subprocess.Popen] = []

    def start(*args: object) -> subprocess.Popen:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        process = subprocess.Popen(
            [sys.executable, "-m", "aam_core.cli", *(str(a) for a in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def read_tensorboard() -> Callable[[Path], object]:
    """``read_tensorboard(run_dir)``: the EventAccumulator of ``run_dir/tensorboard``, reloaded
    with nothing sampled away."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read(run_dir: Path):
        events = EventAccumulator(
            str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}
        )
        events.Reload()
        return events

    return read


#: metrics.json fields that measure wall-clock time, which no two runs share.
TIMING = ("speed/samples_per_s", "speed/epoch_seconds")


def run_outcome(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    """A run's ``val_predictions.tsv`` and ``metrics.json`` without wall-clock fields: what two
    runs meant to be equal (resumed, or on other processes) must agree on."""
    frame = pd.read_csv(run_dir / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("seconds")
    for entry in metrics["history"]:
        for key in TIMING:
            entry.pop(key)
    return frame, metrics
