"""Every registered fusion trains, logs and predicts end to end, and its checkpoint alone
rebuilds it; a checkpoint whose fusion plugin is not installed fails naming the plugin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import aam_core.plugins
from aam_core import CheckpointError, list_plugins, load_model, predict, train

FUSIONS = sorted(info.name for info in list_plugins("fusion"))
BUILT_IN = {"add", "concat", "cross-attention", "gmu", "perceiver"}
COLUMNS = {"one": ["site"], "two": ["site", "run"]}


@pytest.fixture
def two_columns(tiny_data):
    """The tiny data with a second categorical column, ``run`` (r1/r2)."""
    return tiny_data.with_column("run", [f"r{1 + i % 2}" for i in range(len(tiny_data.sample_ids))])


def train_fusion(data, tiny_model, output_dir, fusion, columns, **options):
    return train(
        table=data.table,
        metadata=data.metadata,
        metadata_column="age",
        categorical_columns=columns,
        fusion=fusion,
        output_dir=output_dir,
        **tiny_model,
        **options,
    )


def test_builtins_and_the_example_are_registered():
    assert BUILT_IN | {"scaled-add"} <= set(FUSIONS)


@pytest.mark.parametrize("n_columns", list(COLUMNS))
@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_trains_and_its_checkpoint_predicts(
    fusion, n_columns, two_columns, tiny_model, recorded_plots, tmp_path
):
    del recorded_plots  # only for speed
    columns = COLUMNS[n_columns]
    out = tmp_path / "run"
    result = train_fusion(two_columns, tiny_model, out, fusion, columns)
    assert result.model.model.fusion is not None

    loaded = load_model(out / "checkpoints" / "best.pt")
    assert loaded.config.model.fusion == fusion
    assert loaded.encoder.columns == columns
    assert type(loaded.model.fusion) is type(result.model.model.fusion)

    frame = predict(loaded, two_columns.table, metadata=two_columns.metadata)
    validation = pd.read_csv(out / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    merged = validation.merge(frame, on="sample_id", suffixes=("", "_loaded"))
    assert len(merged) == len(validation)
    np.testing.assert_allclose(merged["predicted_loaded"], merged["predicted"], rtol=1e-5)


def _sizes(data, sample_ids, max_asvs: int) -> np.ndarray:
    """ASVs per sample (capped like the batches), in the order of ``sample_ids``."""
    row = {s: i for i, s in enumerate(data.sample_ids)}
    present = (data.counts > 0).sum(axis=1)
    return np.minimum(present[[row[s] for s in sample_ids]], max_asvs)


def test_gmu_logs_and_returns_its_gate(
    two_columns, tiny_model, recorded_plots, read_tensorboard, tmp_path
):
    del recorded_plots
    out = tmp_path / "run"
    train_fusion(two_columns, tiny_model, out, "gmu", COLUMNS["two"])

    events = read_tensorboard(out)
    gate_mean = events.Scalars("fusion/gate_mean")
    assert [e.step for e in gate_mean] == [1]
    assert 0.0 < gate_mean[0].value < 1.0
    assert "fusion/gate" in events.Tags()["histograms"]

    frame, extras = predict(
        out / "checkpoints" / "best.pt",
        two_columns.table,
        metadata=two_columns.metadata,
        return_extras=True,
    )
    gates = np.stack(extras["gate"])
    assert gates.shape == (len(frame), tiny_model["embedding_dim"])
    assert ((gates > 0) & (gates < 1)).all()


def test_cross_attention_logs_and_returns_its_weights(
    two_columns, tiny_model, recorded_plots, read_tensorboard, tmp_path
):
    del recorded_plots
    out = tmp_path / "run"
    heads = 4
    train_fusion(
        two_columns, tiny_model, out, "cross-attention", COLUMNS["two"], cross_attn_heads=heads
    )

    events = read_tensorboard(out)
    shares = [events.Scalars(f"fusion/attention/{c}")[0].value for c in COLUMNS["two"]]
    assert all(0.0 < share < 1.0 for share in shares)
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)

    frame, extras = predict(
        out / "checkpoints" / "best.pt",
        two_columns.table,
        metadata=two_columns.metadata,
        return_extras=True,
    )
    attention = extras["attention"]
    assert len(attention) == len(frame)
    sizes = _sizes(two_columns, list(frame["sample_id"]), max_asvs=256)
    for weights, size in zip(attention, sizes, strict=True):
        assert weights.shape[0] == heads and weights.shape[2] == len(COLUMNS["two"])
        assert weights.shape[1] >= size
        rows = weights.sum(axis=-1)  # [heads, S]
        np.testing.assert_allclose(rows[:, :size], 1.0, atol=1e-5)
        np.testing.assert_allclose(rows[:, size:], 0.0, atol=1e-7)
        assert (weights >= 0).all()


def test_missing_fusion_plugin_is_named(
    tiny_data, tiny_model, recorded_plots, run_cli, monkeypatch, tmp_path
):
    del recorded_plots
    out = tmp_path / "run"
    train_fusion(tiny_data, tiny_model, out, "scaled-add", ["site"])
    checkpoint = out / "checkpoints" / "best.pt"

    monkeypatch.setenv("AAM_BLOCK_PLUGINS", "scaled-add")
    monkeypatch.setattr(aam_core.plugins, "_default", None)
    assert "scaled-add" not in {info.name for info in list_plugins("fusion")}
    with pytest.raises(CheckpointError, match="fusion plugin 'scaled-add'.*not installed"):
        load_model(checkpoint)

    result = run_cli(
        "predict",
        "--model",
        checkpoint,
        "--table",
        tiny_data.table,
        "--metadata",
        tiny_data.metadata,
        "--output",
        tmp_path / "p.tsv",
    )
    assert result.code == 2
    assert result.err.startswith("aam: error:") and result.err.count("\n") == 1
    assert "'scaled-add'" in result.err
    assert not (tmp_path / "p.tsv").exists()
