"""``aam_core.train`` end to end on the tiny synthetic data: every output file, repeatability,
classification, the count head, the categorical learning rate and the combination warnings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from aam_core import train
from aam_core.config import load_config
from aam_core.training.schedule import make_optimizer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_predictions(run_dir) -> pd.DataFrame:
    """``val_predictions.tsv`` with sample IDs as text and numbers parsed exactly."""
    return pd.read_csv(run_dir / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})


def read_lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def train_tiny(data, output_dir, tiny_model, **options):
    values = dict(
        table=data.table,
        metadata=data.metadata,
        metadata_column="age",
        output_dir=output_dir,
        **tiny_model,
    )
    return train(**{**values, **options})


def checkpoint_state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_train_writes_every_output(tiny_data, tiny_model, read_tensorboard, tmp_path):
    out = tmp_path / "run"
    result = train_tiny(tiny_data, out, tiny_model, categorical_columns="site", epochs=2)

    # config.json re-loads to the config the run used; the checkpoint carries the same config
    assert load_config(out / "config.json") == result.config
    best = torch.load(out / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert best["config"] == json.loads((out / "config.json").read_text())
    assert best["epoch"] == result.best_epoch
    assert (out / "checkpoints" / "last.pt").is_file()
    assert any("count_head" in key for key in best["model_state"])  # on by default

    # the split: disjoint, and together every usable sample
    train_ids = read_lines(out / "train_samples.txt")
    val_ids = read_lines(out / "val_samples.txt")
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == sorted(tiny_data.sample_ids)
    assert len(train_ids) == len(set(train_ids))

    # val_predictions.tsv: the validation samples, the metadata's values exactly, the best epoch
    frame = read_predictions(out)
    assert list(frame.columns) == ["sample_id", "actual", "predicted", "epoch"]
    assert sorted(frame["sample_id"]) == sorted(val_ids)
    ages = dict(zip(tiny_data.sample_ids, tiny_data.age, strict=True))
    assert frame["actual"].tolist() == [ages[s] for s in frame["sample_id"]]
    assert (frame["epoch"] == result.best_epoch).all()
    assert np.isfinite(frame["predicted"]).all()
    pd.testing.assert_frame_equal(
        frame.drop(columns="epoch"), result.predictions.reset_index(drop=True), check_dtype=False
    )

    # metrics.json: validation MAE is the MAE of the file a person reads
    metrics = json.loads((out / "metrics.json").read_text())
    mae = float(np.mean(np.abs(frame["actual"] - frame["predicted"])))
    assert metrics["val"]["mae"] == pytest.approx(mae, rel=1e-9)
    assert metrics["val"]["n"] == len(val_ids)
    assert metrics["best_epoch"] == result.best_epoch
    assert (metrics["n_train"], metrics["n_val"]) == (len(train_ids), len(val_ids))
    assert metrics["epochs_run"] == 2
    assert metrics == json.loads(json.dumps(result.metrics, default=float))

    png = out / "plots" / "predicted_vs_actual.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 1000

    events = read_tensorboard(out)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    for tag in ("train/loss", "val/mae", "lr/main"):
        assert [e.step for e in events.Scalars(tag)] == [1, 2], tag
    at_best = {e.step: e.value for e in events.Scalars("val/mae")}[result.best_epoch]
    assert at_best == pytest.approx(metrics["val"]["mae"], rel=1e-6)

    # atomic writes leave no temporary files behind
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".aamtmp"))]


def test_same_seed_gives_identical_predictions(tiny_data, tiny_model, recorded_plots, tmp_path):
    del recorded_plots  # only for speed
    for name in ("first", "second"):
        train_tiny(tiny_data, tmp_path / name, tiny_model, categorical_columns="site", seed=7)
    pd.testing.assert_frame_equal(
        read_predictions(tmp_path / "first"), read_predictions(tmp_path / "second")
    )
    assert (tmp_path / "first" / "val_samples.txt").read_text() == (
        tmp_path / "second" / "val_samples.txt"
    ).read_text()


def test_a_training_step_is_bitwise_repeatable_on_several_threads():
    """A sample's ASV vectors are gathered from the batch's unique ASVs, and the gather's gradient
    sums the slots that share an ASV. That sum must not depend on how the threads split the work:
    with ``asv[index]`` it did, so two runs of one seed on two cores drifted apart (by 0.04 years
    of MAE on a cross-validation fold)."""
    from aam_core.data import load_dataset
    from aam_core.data.batching import collate
    from aam_core.data.demo import demo_paths
    from aam_core.model.build import build_model
    from aam_core.options import build_config

    demo = demo_paths()
    config = build_config(table=str(demo.table), metadata=str(demo.metadata), metadata_column="age", max_bp=100, dropout=0.0)
    dataset = load_dataset(config.data)
    torch.manual_seed(0)
    model = build_model(config, out_dim=1, category_sizes=[], scaling=None)
    batch = collate(dataset, np.arange(32), max_asvs=128, categories=np.zeros((len(dataset), 0), dtype=np.int64), target=None)

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(batch).prediction.square().sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = gradients()
        for _ in range(7):
            again = gradients()
            assert [name for name in first if not torch.equal(first[name], again[name])] == []
    finally:
        torch.set_num_threads(threads)
    assert "asv_encoder.base_embedding.weight" in first  # the gradient reaches through the gather


def test_no_count_prediction_removes_the_head(tiny_data, tiny_model, recorded_plots, tmp_path):
    del recorded_plots
    result = train_tiny(tiny_data, tmp_path / "run", tiny_model, count_prediction=False)
    state = checkpoint_state(tmp_path / "run" / "checkpoints" / "best.pt")
    assert not [key for key in state if "count_head" in key]
    assert result.model.model.count_head is None
    assert "train/count_loss" not in result.metrics["history"][0]


def test_classifier_trains_and_predicts_labels(tiny_data, tiny_model, tmp_path):
    out = tmp_path / "run"
    result = train_tiny(tiny_data, out, tiny_model, metadata_column="site", classifier=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "f1"} <= set(metrics["val"])
    assert 0.0 <= metrics["val"]["accuracy"] <= 1.0
    assert metrics["target_transform"] is None

    frame = read_predictions(out)
    sites = dict(zip(tiny_data.sample_ids, tiny_data.site, strict=True))
    assert frame["actual"].tolist() == [sites[s] for s in frame["sample_id"]]
    assert set(frame["predicted"]) <= set(tiny_data.site)
    accuracy = float((frame["actual"] == frame["predicted"]).mean())
    assert metrics["val"]["accuracy"] == pytest.approx(accuracy)

    again = result.model.predict(tiny_data.table, metadata=tiny_data.metadata)
    assert set(again["predicted"]) <= set(tiny_data.site)
    assert again["actual"].tolist() == [sites[s] for s in again["sample_id"]]


def test_categorical_lr_makes_two_parameter_groups(
    tiny_data, tiny_model, read_tensorboard, recorded_plots, tmp_path
):
    del recorded_plots
    lr, categorical_lr = 1e-3, 1e-2
    out = tmp_path / "run"
    result = train_tiny(
        tiny_data, out, tiny_model, categorical_columns="site", lr=lr, categorical_lr=categorical_lr
    )
    events = read_tensorboard(out)
    main = events.Scalars("lr/main")[0]
    cat = events.Scalars("lr/categorical")[0]
    assert main.step == cat.step == 1
    assert cat.value / main.value == pytest.approx(categorical_lr / lr, rel=1e-5)

    model = result.model.model
    conditioning = model.conditioning_parameters()
    optimizer = make_optimizer(model, lr, 0.01, conditioning, categorical_lr)
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert set(groups) == {"main", "categorical"}
    assert (groups["main"]["lr"], groups["categorical"]["lr"]) == (lr, categorical_lr)
    expected = {id(p) for m in (model.categorical, model.fusion) for p in m.parameters()}
    assert {id(p) for p in groups["categorical"]["params"]} == expected
    assert {id(p) for p in conditioning} == expected
    everything = {id(p) for p in model.parameters()}
    assert {id(p) for p in groups["main"]["params"]} == everything - expected

    same = make_optimizer(model, lr, 0.01, conditioning, None)
    assert [group["lr"] for group in same.param_groups] == [lr, lr]


def _no_effect_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "has no effect without" in str(w.message)]


def test_fusion_without_categorical_columns_warns_once(
    tiny_data, tiny_model, recorded_plots, tmp_path
):
    del recorded_plots
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_tiny(tiny_data, tmp_path / "gmu", tiny_model, fusion="gmu")
    messages = _no_effect_warnings(caught)
    assert len(messages) == 1
    assert "--fusion gmu" in messages[0] and "--categorical-columns" in messages[0]
    assert "\n" not in messages[0]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_tiny(tiny_data, tmp_path / "default", tiny_model)
    assert _no_effect_warnings(caught) == []


@pytest.mark.parametrize("categorical", [None, "site"], ids=["scaling-only", "also-input"])
def test_conditional_output_scaling(tiny_data, tiny_model, recorded_plots, tmp_path, categorical):
    del recorded_plots
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_tiny(
            tiny_data,
            out,
            tiny_model,
            categorical_columns=categorical,
            conditional_output_scaling="site",
        )
    scaling_warnings = [
        str(w.message) for w in caught if "--conditional-output-scaling" in str(w.message)
    ]
    if categorical is None:
        assert len(scaling_warnings) == 1
        assert "'site' is not in --categorical-columns" in scaling_warnings[0]
    else:
        assert scaling_warnings == []

    state = checkpoint_state(out / "checkpoints" / "best.pt")
    assert [key for key in state if key.startswith("output_scaling.")]
    assert ("categorical" in {k.split(".")[0] for k in state}) == (categorical is not None)
    scaling = {id(p) for p in result.model.model.output_scaling.parameters()}
    assert scaling <= {id(p) for p in result.model.model.conditioning_parameters()}

    frame = read_predictions(out)
    again = result.model.predict(tiny_data.table, metadata=tiny_data.metadata)
    merged = frame.merge(again, on="sample_id", suffixes=("", "_again"))
    assert len(merged) == len(frame)
    np.testing.assert_allclose(merged["predicted_again"], merged["predicted"], rtol=1e-5)
