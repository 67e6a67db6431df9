"""Edge cases found in review: each was a traceback, a silent wrong result or a dead flag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aam_core import ConfigError, DataError, predict, train
from aam_core.data import load_dataset
from aam_core.options import build_config


def _train(tiny_data, tmp_path, **extra):
    return train(
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="age",
        output_dir=tmp_path / "run",
        **{**dict(embedding_dim=16, attention_heads=2, attention_layers=1, epochs=1, batch_size=8, max_bp=40), **extra},
    )


def test_predict_survives_a_batch_of_only_empty_samples(tiny_data, write_biom, tmp_path, recorded_plots):
    del recorded_plots
    result = _train(tiny_data, tmp_path)
    counts = tiny_data.counts[:3].copy()
    counts[2] = 0
    table = write_biom(tmp_path / "new.biom", counts, tiny_data.sequences, ["A", "B", "EMPTY"])
    with pytest.warns(UserWarning, match="1 samples have no reads"):
        frame = predict(result.model, table, batch_size=1)
    assert list(frame["sample_id"]) == ["A", "B", "EMPTY"]
    assert np.isnan(frame["predicted"].iloc[2]) and np.isfinite(frame["predicted"].iloc[:2]).all()


def test_extras_are_trimmed_to_each_samples_asvs_and_name_them(tiny_data, tmp_path, recorded_plots):
    del recorded_plots
    result = _train(tiny_data, tmp_path, categorical_columns="site", fusion="cross-attention", cross_attn_heads=2)
    frame, extras = predict(result.model, tiny_data.table, metadata=tiny_data.metadata, return_extras=True)
    for row, sample in enumerate(frame["sample_id"]):
        i = tiny_data.sample_ids.index(sample)
        expected = {tiny_data.sequences[f] for f in np.flatnonzero(tiny_data.counts[i])}
        sequences = extras["asv_sequences"][row]
        assert set(sequences) == expected
        attention = extras["attention"][row]
        assert attention.shape == (2, len(sequences), 1)
        np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)


def test_a_gate_as_wide_as_the_slot_count_is_not_trimmed(tiny_data, tmp_path, recorded_plots):
    """A GMU gate has D entries; a batch whose slot count equals D must not cut it per sample."""
    del recorded_plots
    dim = int(tiny_data.counts.astype(bool).sum(axis=1).max())  # = the slot count of a full batch
    result = _train(tiny_data, tmp_path, categorical_columns="site", fusion="gmu", embedding_dim=dim, attention_heads=1)
    frame, extras = predict(result.model, tiny_data.table, metadata=tiny_data.metadata, return_extras=True, batch_size=len(tiny_data.sample_ids))
    for gate in extras["gate"]:
        assert gate.shape == (dim,)


def test_rarefying_deeper_than_every_sample_is_a_data_error(tiny_data):
    with pytest.raises(DataError, match="--rarefy-depth"):
        load_dataset(tiny_data.config(rarefy_depth=10**9))


def test_unknown_predict_device_is_a_config_error(tiny_data, tmp_path, recorded_plots):
    del recorded_plots
    _train(tiny_data, tmp_path)
    from aam_core import load_model

    with pytest.raises(ConfigError, match="--device"):
        load_model(tmp_path / "run" / "checkpoints" / "best.pt", device="foo")


def test_regression_with_several_outputs_is_refused_before_any_file(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="--out-dim"):
        _train(tiny_data, tmp_path, out_dim=2)
    assert not (tmp_path / "run").exists()


def test_metrics_json_is_strict_json_when_r2_is_undefined(tiny_data, tmp_path, recorded_plots):
    del recorded_plots
    ids = tiny_data.sample_ids
    _train(tiny_data, tmp_path, train_samples=ids[1:], val_samples=ids[:1])
    text = (tmp_path / "run" / "metrics.json").read_text()

    def refuse(constant):
        raise AssertionError(f"metrics.json holds {constant}")

    metrics = json.loads(text, parse_constant=refuse)
    assert metrics["val"]["r2"] is None and metrics["val"]["n"] == 1


def test_legacy_flags_from_python_false_means_not_given():
    config = build_config(table="t", log_transform_targets=False)
    assert config.training.target_transform == "zscore"


def test_no_normalize_with_normalize_by_is_a_conflict():
    with pytest.raises(ConfigError, match="--no-normalize-targets"):
        build_config(table="t", normalize_targets=False, normalize_targets_by="site")


def test_overriding_the_fusion_of_a_config_file_drops_its_options(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"model": {"fusion": "cross-attention", "fusion_options": {"cross_attn_heads": 2}}}))
    config = build_config(path, table="t", fusion="gmu")
    assert config.model.fusion == "gmu" and config.model.fusion_options == {}
    kept = build_config(path, table="t")
    assert kept.model.fusion_options == {"cross_attn_heads": 2}


def test_training_reads_only_the_strategy_shard(tiny_data, tiny_model):
    from aam_core.model.build import build_model
    from aam_core.targets import TargetEncoding
    from aam_core.training.supervised import Split, SupervisedTask
    from aam_plugins.parallel.single import SingleDeviceStrategy
    from aam_plugins.transforms.zscore import ZScoreTransform

    class FirstOfTwo(SingleDeviceStrategy):
        world_size = 2  # process 0 of 2: its sampler deals it every other row of the order

    config = build_config(table=str(tiny_data.table), max_asvs=8, **{**tiny_model, "batch_size": 4})
    dataset = load_dataset(tiny_data.config())
    rows = np.arange(len(dataset))
    encoding = TargetEncoding(None, ZScoreTransform().fit(dataset.target), None)
    task = SupervisedTask(
        config=config, model=build_model(config, out_dim=1, category_sizes=[], scaling=None), dataset=dataset,
        split=Split(train=rows, val=rows[:0]), codes=np.zeros((len(dataset), 0), dtype=np.int64),
        encoding=encoding, strategy=FirstOfTwo(device="cpu"),
    )  # fmt: skip
    seen = np.concatenate([b.rows for b in task.train_batches(epoch=1)])
    assert len(seen) == len(rows[::2]) == task.n_train_batches() * 4 - (-len(rows[::2]) % 4)
    assert len(set(seen)) == len(seen)


def test_baseline_options_pass_through_key_values(tiny_data, tmp_path, run_cli):
    train_list = tmp_path / "train.txt"
    val_list = tmp_path / "val.txt"
    train_list.write_text("\n".join(tiny_data.sample_ids[:20]) + "\n")
    val_list.write_text("\n".join(tiny_data.sample_ids[20:]) + "\n")
    common = [
        "baseline", "random-forest", "--table", tiny_data.table, "--metadata", tiny_data.metadata,
        "--metadata-column", "age", "--train-samples", train_list, "--val-samples", val_list,
    ]  # fmt: skip
    good = run_cli(*common, "--output", tmp_path / "rf.tsv", "--baseline-option", "n_estimators=5")
    assert good.code == 0, good.err
    assert (tmp_path / "rf.tsv").exists()
    bad = run_cli(*common, "--output", tmp_path / "bad.tsv", "--baseline-option", "bogus=1")
    assert bad.code == 2 and "--bogus" in bad.err and bad.err.count("\n") == 1
    assert not (tmp_path / "bad.tsv").exists()


def test_cli_train_reuses_a_previous_split(tiny_data, tmp_path, run_cli, as_flags, tiny_model, recorded_plots):
    del recorded_plots
    first = tmp_path / "first"
    base = ["train", "--table", tiny_data.table, "--metadata", tiny_data.metadata, "--metadata-column", "age"]
    assert run_cli(*base, *as_flags(tiny_model), "--output-dir", first).code == 0
    second = tmp_path / "second"
    again = run_cli(
        *base, *as_flags({**tiny_model, "seed": 7}), "--output-dir", second,
        "--train-samples", first / "train_samples.txt", "--val-samples", first / "val_samples.txt",
    )  # fmt: skip
    assert again.code == 0, again.err
    for name in ("train_samples.txt", "val_samples.txt"):
        assert (second / name).read_text() == (first / name).read_text()
