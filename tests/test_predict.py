"""``load_model`` / ``predict`` / ``aam predict`` on a checkpoint trained on the tiny data:
round trip, new samples with new ASVs, unseen categories, and bad model paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aam_core import CheckpointError, load_model, predict, train

N_NEW = 12


@pytest.fixture
def trained(tiny_data, tiny_model, recorded_plots, tmp_path):
    """A tiny model trained on ``age`` with ``site`` as categorical input."""
    del recorded_plots  # only for speed
    return train(
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="age",
        categorical_columns="site",
        output_dir=tmp_path / "run",
        **tiny_model,
    )


def best_checkpoint(result):
    return result.output_dir / "checkpoints" / "best.pt"


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"sample_id": str})


def new_sequences(known: list[str], n: int, seed: int = 5) -> list[str]:
    rng = np.random.default_rng(seed)
    seen, out = set(known), []
    while len(out) < n:
        sequence = "".join(rng.choice(list("ACGT"), size=int(rng.integers(20, 41))))
        if sequence not in seen:
            seen.add(sequence)
            out.append(sequence)
    return out


@pytest.fixture
def other_samples(tiny_data, write_biom, write_tsv, tmp_path):
    """A second table: new sample IDs; 10 of the training ASVs and 15 new ones. The last sample
    holds only new ASVs. ``write_metadata(sites, with_target=True)`` writes its metadata."""
    folder = tmp_path / "other"
    folder.mkdir()
    sequences = tiny_data.sequences[:10] + new_sequences(tiny_data.sequences, 15)
    rng = np.random.default_rng(3)
    counts = np.zeros((N_NEW, len(sequences)), dtype=np.int64)
    for row in range(N_NEW):
        columns = rng.choice(len(sequences), size=6, replace=False)
        counts[row, columns] = rng.integers(1, 300, size=6)
    counts[-1, :] = 0
    counts[-1, 10:16] = np.arange(1, 7)
    sample_ids = [f"NEW.{i}" for i in range(N_NEW)]
    table = write_biom(folder / "table.biom", counts, sequences, sample_ids)
    ages = np.round(rng.uniform(20, 70, size=N_NEW), 2)

    def write_metadata(sites: list[str] | None = None, with_target: bool = True):
        sites = sites or ["cheek", "gum", "tongue"] * (N_NEW // 3)
        header = ["sample-id", *(["age"] if with_target else []), "site"]
        rows = [
            [s, *([a] if with_target else []), c]
            for s, a, c in zip(sample_ids, ages, sites, strict=True)
        ]
        return write_tsv(folder / "metadata.tsv", header, rows)

    return table, sample_ids, dict(zip(sample_ids, ages, strict=True)), write_metadata


def test_checkpoint_reproduces_validation_predictions(trained, tiny_data):
    loaded = load_model(best_checkpoint(trained))
    assert loaded.config == trained.config
    assert loaded.encoder.columns == ["site"]
    frame = predict(loaded, tiny_data.table, metadata=tiny_data.metadata)
    assert sorted(frame["sample_id"]) == sorted(tiny_data.sample_ids)

    validation = read_tsv(trained.output_dir / "val_predictions.tsv")
    merged = validation.merge(frame, on="sample_id", suffixes=("", "_loaded"))
    assert len(merged) == len(validation)
    np.testing.assert_allclose(merged["predicted_loaded"], merged["predicted"], rtol=1e-5)
    assert (merged["actual_loaded"] == merged["actual"]).all()

    by_path = predict(best_checkpoint(trained), tiny_data.table, metadata=tiny_data.metadata)
    pd.testing.assert_frame_equal(by_path, frame)


def test_predict_new_samples_and_new_asvs(trained, other_samples, run_cli, tmp_path):
    table, sample_ids, ages, write_metadata = other_samples
    metadata = write_metadata()
    out = tmp_path / "predictions" / "new.tsv"
    frame = predict(best_checkpoint(trained), table, metadata=metadata, output=out)

    assert list(frame.columns) == ["sample_id", "actual", "predicted"]
    assert sorted(frame["sample_id"]) == sorted(sample_ids)
    assert frame["actual"].tolist() == [ages[s] for s in frame["sample_id"]]
    assert np.isfinite(frame["predicted"]).all()
    pd.testing.assert_frame_equal(read_tsv(out), frame)

    cli_out = tmp_path / "cli.tsv"
    result = run_cli(
        "predict",
        "--model",
        best_checkpoint(trained),
        "--table",
        table,
        "--metadata",
        metadata,
        "--output",
        cli_out,
    )
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    written = read_tsv(cli_out)
    assert list(written["sample_id"]) == list(frame["sample_id"])
    np.testing.assert_allclose(written["predicted"], frame["predicted"], rtol=1e-5)


def test_predict_without_the_target_column(trained, other_samples):
    table, sample_ids, _, write_metadata = other_samples
    frame = predict(best_checkpoint(trained), table, metadata=write_metadata(with_target=False))
    assert list(frame.columns) == ["sample_id", "predicted"]
    assert sorted(frame["sample_id"]) == sorted(sample_ids)


def test_unseen_category_warns_and_still_predicts(trained, other_samples):
    table, sample_ids, _, write_metadata = other_samples
    sites = ["cheek", "palate", "gum", "palate"] * (N_NEW // 4)
    metadata = write_metadata(sites)
    with pytest.warns(UserWarning, match="'site' value unseen in training") as caught:
        frame = predict(best_checkpoint(trained), table, metadata=metadata)
    assert any("palate" in str(w.message) for w in caught)
    assert sorted(frame["sample_id"]) == sorted(sample_ids)
    assert np.isfinite(frame["predicted"]).all()


def test_categorical_model_predicts_without_metadata_as_unknown(trained, tiny_data, run_cli, tmp_path):
    """No --metadata: one warning naming the columns; every sample is predicted with its
    category unknown — the same as metadata whose categories the model never saw."""
    with pytest.warns(UserWarning, match="No --metadata.*site.*unknown") as caught:
        frame = predict(best_checkpoint(trained), tiny_data.table)
    assert len([w for w in caught if "No --metadata" in str(w.message)]) == 1
    assert sorted(frame["sample_id"]) == sorted(tiny_data.sample_ids)
    assert np.isfinite(frame["predicted"]).all()

    unseen = tiny_data.with_column("site2", ["x"] * len(tiny_data.sample_ids))
    relabelled = tmp_path / "unseen.tsv"
    text = unseen.metadata.read_text().replace("\tsite\t", "\told_site\t").replace("\tsite2", "\tsite")
    relabelled.write_text(text)
    with pytest.warns(UserWarning, match="unseen in training"):
        as_unseen = predict(best_checkpoint(trained), tiny_data.table, metadata=relabelled)
    merged = frame.merge(as_unseen, on="sample_id", suffixes=("", "_unseen"))
    np.testing.assert_allclose(merged["predicted"], merged["predicted_unseen"], rtol=1e-6)

    out = tmp_path / "p.tsv"
    with pytest.warns(UserWarning, match="No --metadata") as caught:
        result = run_cli("predict", "--model", best_checkpoint(trained), "--table", tiny_data.table, "--output", out)
    assert result.code == 0, result.err
    assert len([w for w in caught if "No --metadata" in str(w.message)]) == 1
    assert out.exists()


@pytest.mark.parametrize("kind", ["missing", "random-bytes", "json", "foreign-torch"])
def test_not_a_checkpoint(kind, tiny_data, run_cli, tmp_path):
    import torch

    path = tmp_path / "model.pt"
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "json":
        path.write_text('{"data": {"table": "x"}}\n')
    elif kind == "foreign-torch":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    out = tmp_path / "previous.tsv"
    out.write_text("sample_id\tpredicted\nA\t1.0\n")
    before = (out.read_bytes(), out.stat().st_mtime_ns)

    with pytest.raises(CheckpointError, match="model.pt"):
        load_model(path)
    result = run_cli("predict", "--model", path, "--table", tiny_data.table, "--output", out)
    assert result.code == 2
    assert result.err.startswith("aam: error:") and result.err.count("\n") == 1
    assert "model.pt" in result.err
    assert "Traceback" not in result.err
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_metadata_without_the_categorical_column(trained, tiny_data, write_tsv, run_cli, tmp_path):
    rows = [[s, a] for s, a in zip(tiny_data.sample_ids, tiny_data.age, strict=True)]
    metadata = write_tsv(tmp_path / "ages.tsv", ["sample-id", "age"], rows)
    result = run_cli(
        "predict", "--model", best_checkpoint(trained), "--table", tiny_data.table,
        "--metadata", metadata, "--output", tmp_path / "p.tsv",
    )  # fmt: skip
    assert result.code == 2
    assert result.err.startswith("aam: error:") and result.err.count("\n") == 1
    assert "'site'" in result.err and "ages.tsv" in result.err


def test_predict_keeps_samples_the_metadata_lacks(
    tiny_data, tiny_model, recorded_plots, write_tsv, tmp_path
):
    del recorded_plots
    result = train(
        table=tiny_data.table, metadata=tiny_data.metadata, metadata_column="age",
        output_dir=tmp_path / "run", **tiny_model,
    )  # fmt: skip
    rows = [[s, a] for s, a in zip(tiny_data.sample_ids[:20], tiny_data.age[:20], strict=True)]
    partial = write_tsv(tmp_path / "partial.tsv", ["sample-id", "age"], rows)
    with pytest.warns(UserWarning, match=r"10 samples of .* are not in .*partial\.tsv"):
        frame = predict(best_checkpoint(result), tiny_data.table, metadata=partial)
    assert sorted(frame["sample_id"]) == sorted(tiny_data.sample_ids)
    assert frame["actual"].isna().sum() == len(tiny_data.sample_ids) - 20
