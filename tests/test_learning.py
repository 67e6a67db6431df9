"""Tests that notice a model that does not learn: a planted signal AAM must find, and real data
(the embedded oral-age demo) where it must beat predicting the mean — both scored on samples
that chose nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aam_core import train
from aam_core.data.demo import demo_paths
from aam_core.training.metrics import regression_metrics


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """120 samples × 30 ASVs; the target is 20 + 60 × the relative abundance of ASV 0."""
    from conftest import _write_biom, _write_tsv, random_sequences

    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(7)
    n, f = 120, 30
    sequences = random_sequences(rng, f, low=30, high=40)
    counts = np.zeros((n, f), dtype=np.int64)
    for row in range(n):
        others = rng.choice(np.arange(1, f), size=8, replace=False)
        counts[row, others] = rng.integers(20, 200, size=8)
        counts[row, 0] = rng.integers(0, 600)
    share = counts[:, 0] / counts.sum(axis=1)
    target = 20.0 + 60.0 * share
    ids = [f"P{i:03d}" for i in range(n)]
    table = _write_biom(folder / "table.biom", counts, sequences, ids)
    metadata = _write_tsv(folder / "metadata.tsv", ["sample-id", "trait"], [[s, f"{t:.3f}"] for s, t in zip(ids, target, strict=True)])
    return table, metadata, ids


def _mean_predictor_mae(metadata, column: str, run_dir, test_actual) -> float:
    """The MAE of predicting every test sample as the training samples' mean."""
    frame = pd.read_csv(metadata, sep="\t", dtype=str)
    frame = frame[frame.iloc[:, 0] != "#q2:types"].set_index(frame.columns[0])
    train_ids = (run_dir / "train_samples.txt").read_text().split()
    mean = pd.to_numeric(frame.loc[train_ids, column]).mean()
    return float(np.mean(np.abs(np.asarray(test_actual, dtype=float) - mean)))


def test_aam_finds_a_planted_signal(planted, tmp_path):
    table, metadata, ids = planted
    result = train(
        table=table, metadata=metadata, metadata_column="trait", output_dir=tmp_path / "run",
        train_samples=ids[:80], val_samples=ids[80:100], test_samples=ids[100:],
        embedding_dim=32, attention_heads=2, attention_layers=1, asv_layers=1, max_bp=40,
        epochs=40, batch_size=16, lr=3e-3, dropout=0.0, count_prediction=False, target_loss="mse",
    )  # fmt: skip
    test = result.test_predictions
    baseline = _mean_predictor_mae(metadata, "trait", tmp_path / "run", test["actual"])
    mae = regression_metrics(test["actual"], test["predicted"])["mae"]
    assert mae < 0.35 * baseline, (mae, baseline)


def test_aam_beats_the_mean_on_real_oral_samples(tmp_path):
    """The embedded demo (309 oral samples): 60 held out as a test set nothing selects on."""
    paths = demo_paths()
    result = train(
        table=paths.table, metadata=paths.metadata, metadata_column="age", categorical_columns=["qiita_study_id"],
        output_dir=tmp_path / "run", test_fraction=0.2, fusion="gmu", embedding_dim=32, attention_heads=4,
        attention_layers=1, asv_layers=1, max_bp=100, max_asvs=64, epochs=12, batch_size=16, lr=2e-3,
        target_loss="huber", count_prediction=False,
    )  # fmt: skip
    test = result.test_predictions
    assert len(test) >= 60
    baseline = _mean_predictor_mae(paths.metadata, "age", tmp_path / "run", test["actual"])
    mae = regression_metrics(test["actual"], test["predicted"])["mae"]
    assert mae < 0.75 * baseline, (mae, baseline)
