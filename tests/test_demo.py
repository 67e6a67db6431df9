"""``aam train --demo``: the README's first command, on the data shipped in the package."""

from __future__ import annotations

import pandas as pd

from aam_core.data.demo import demo_options, demo_paths


def test_demo_trains_on_the_embedded_data(tmp_path, run_cli, recorded_plots):
    del recorded_plots
    out = tmp_path / "demo"
    result = run_cli("train", "--demo", "--epochs", "1", "--output-dir", out)
    assert result.code == 0, result.err
    assert "optimizer steps per epoch" not in result.err  # the demo's own settings raise no warning
    predictions = pd.read_csv(out / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    metadata = pd.read_csv(demo_paths().metadata, sep="\t", dtype={"#SampleID": str})
    ages = dict(zip(metadata["#SampleID"], metadata["age"], strict=True))
    assert len(predictions) > 0
    assert all(ages[s] == a for s, a in zip(predictions["sample_id"], predictions["actual"], strict=True))
    assert (out / "checkpoints" / "best.pt").is_file()


def test_flags_given_with_demo_override_its_preset(tmp_path, run_cli, recorded_plots):
    del recorded_plots
    import attrs

    from aam_core.config import DataConfig

    data = {f.name for f in attrs.fields(DataConfig)}
    assert set(demo_options()) - data == {"batch_size"}  # the data, and a batch size for its size
    out = tmp_path / "demo"
    result = run_cli("train", "--demo", "--epochs", "1", "--embedding-dim", "32", "--output-dir", out)
    assert result.code == 0, result.err
    assert '"embedding_dim": 32' in (out / "config.json").read_text()
