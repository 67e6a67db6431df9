"""What a scientist meets in the first hour: classification outputs, figures that show the
finding, the metric that picks the best epoch, the right task, and warnings for combinations
that do nothing — each read back from the files and figures, not assumed."""

from __future__ import annotations

import json
import logging

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from aam_core import ConfigError, train
from aam_core.training import supervised


def _train(data, out, tiny_model, **options):
    values = dict(table=data.table, metadata=data.metadata, metadata_column="age", output_dir=out)
    return train(**{**values, **tiny_model, **options})


def test_classification_writes_probabilities_figures_and_per_class_metrics(tiny_data, tiny_model, tmp_path):
    two = tiny_data.with_column("smoker", ["yes" if i % 3 else "no" for i in range(len(tiny_data.sample_ids))])
    out = tmp_path / "run"
    result = _train(two, out, tiny_model, metadata_column="smoker", classifier=True, epochs=2)
    frame = pd.read_csv(out / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    assert list(frame.columns) == ["sample_id", "actual", "predicted", "no", "yes", "epoch"]
    np.testing.assert_allclose(frame[["no", "yes"]].sum(axis=1), 1.0, rtol=1e-6)
    picked = np.where(frame["yes"] > frame["no"], "yes", "no")
    assert (picked == frame["predicted"]).all()  # the label is the most probable class

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_metric"] == "val F1"
    assert {"accuracy", "f1", "auc"} <= set(metrics["val"])
    assert set(metrics["val_per_class"]) == {"no", "yes"}
    assert sum(c["support"] for c in metrics["val_per_class"].values()) == len(frame)
    for name in ("confusion_matrix.png", "roc.png", "training_curves.png"):
        assert matplotlib.image.imread(out / "plots" / name).ndim == 3, name
    again = result.model.predict(two.table, metadata=two.metadata)
    assert {"no", "yes"} <= set(again.columns)


def test_the_scatter_is_labelled_and_coloured_by_the_study(tiny_data, tiny_model, tmp_path, monkeypatch):
    drawn = []
    original = supervised.predicted_vs_actual_figure

    def spy(actual, predicted, title, **keywords):
        figure = original(actual, predicted, title, **keywords)
        drawn.append(figure)
        return figure

    monkeypatch.setattr(supervised, "predicted_vs_actual_figure", spy)
    _train(tiny_data, tmp_path / "run", tiny_model, categorical_columns="site", target_units="years")
    ax = drawn[0].axes[0]
    assert ax.get_xlabel() == "actual age (years)" and ax.get_ylabel() == "predicted age (years)"
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "site"
    labels = {t.get_text().split(" (n=")[0] for t in legend.get_texts()}
    val = pd.read_csv(tmp_path / "run" / "val_samples.txt", header=None)[0]
    sites = dict(zip(tiny_data.sample_ids, tiny_data.site, strict=True))
    assert {str(sites[s]) for s in val} <= labels and "y = x" in labels
    assert "MAE" in ax.get_title() and "validation" in ax.get_title()


def test_best_metric_picks_the_epoch_and_is_named(tiny_data, tiny_model, tmp_path, recorded_plots, caplog):
    del recorded_plots
    with caplog.at_level(logging.INFO, logger="aam"):
        result = _train(tiny_data, tmp_path / "r2", tiny_model, epochs=4, best_metric="r2", seed=2)
    history = result.metrics["history"]
    best = max(history, key=lambda e: e["val/r2"])
    assert result.best_epoch == best["epoch"]
    assert result.metrics["best_metric"] == "val R²"
    assert "(the best by val R²)" in caplog.text
    with pytest.raises(ConfigError, match="--best-metric f1 does not apply to regression"):
        _train(tiny_data, tmp_path / "bad", tiny_model, best_metric="f1")


def test_a_target_that_looks_categorical_warns(tiny_data, tiny_model, tmp_path, recorded_plots):
    del recorded_plots
    codes = tiny_data.with_column("group", [str(1 + i % 3) for i in range(len(tiny_data.sample_ids))])
    with pytest.warns(UserWarning, match="'group' has only 3 distinct whole-number values.*--classifier"):
        _train(codes, tmp_path / "run", tiny_model, metadata_column="group")


def test_too_few_steps_and_a_batch_larger_than_the_data_warn(tiny_data, tiny_model, tmp_path, recorded_plots):
    del recorded_plots
    with pytest.warns(UserWarning, match="--batch-size 64 is larger than the 24 training samples"):
        _train(tiny_data, tmp_path / "a", tiny_model, batch_size=64)
    with pytest.warns(UserWarning, match="Only 3 optimizer steps per epoch"):
        _train(tiny_data, tmp_path / "b", tiny_model, batch_size=8)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"count_prediction": False, "count_loss_weight": 2.0}, "--count-loss-weight has no effect with --no-count-prediction"),
        ({"categorical_columns": "site", "fusion": "cross-attention", "cross_attn_heads": 2}, "cross-attention over one categorical column"),
        ({"val_fraction": 0.3, "list": True}, "--val-fraction has no effect with --train-samples"),
        ({"unknown_head": True}, "--unknown-head has no effect without --categorical-columns"),
        ({"categorical_columns": "site", "category_dropout": 0.0, "unknown_head": True}, "--unknown-head has no effect with --category-dropout 0"),
        ({"category_prediction_weight": 2.0}, "--category-prediction-weight has no effect without --categorical-columns"),
        ({"categorical_columns": "site", "category_dropout": 0.0, "category_prediction_weight": 2.0}, "--category-prediction-weight has no effect with --category-dropout 0"),
    ],
    ids=[
        "count-weight", "cross-attention-one-column", "split-with-lists", "unknown-head-no-columns", "unknown-head-no-dropout",
        "category-prediction-no-columns", "category-prediction-no-dropout",
    ],  # fmt: skip
)
def test_options_that_do_nothing_warn(tiny_data, tiny_model, tmp_path, recorded_plots, options, needle):
    del recorded_plots
    options = dict(options)
    if options.pop("list", False):
        options.update(train_samples=tiny_data.sample_ids[:24], val_samples=tiny_data.sample_ids[24:])
    with pytest.warns(UserWarning, match=needle):
        _train(tiny_data, tmp_path / "run", tiny_model, **options)


def test_start_up_block_lists_what_differs_from_the_defaults(tiny_data, tiny_model, tmp_path, recorded_plots, caplog):
    del recorded_plots
    with caplog.at_level(logging.INFO, logger="aam"):
        _train(tiny_data, tmp_path / "run", tiny_model, lr=0.002)
    block = caplog.text.split("settings that differ from the defaults:", 1)[1]
    assert "--lr 0.002" in block and "--embedding-dim 16" in block and "--metadata-column age" in block
    assert "--patch-size" not in block  # a default is not listed


def test_deprecated_names_of_the_replaced_system_still_work(tiny_data, tiny_model, tmp_path, run_cli, as_flags, recorded_plots):
    del recorded_plots
    flags = ["--table", tiny_data.table, "--metadata", tiny_data.metadata, "--metadata-column", "age", *as_flags(tiny_model)]
    with pytest.warns(FutureWarning) as caught:
        result = run_cli("train", *flags, "--categorical-columns", "site", "--categorical-fusion", "gmu", "--count-penalty", "0.5", "--output-dir", tmp_path / "run")
    assert result.code == 0, result.err
    messages = " ".join(str(w.message) for w in caught)
    assert "--categorical-fusion is deprecated; use --fusion" in messages
    assert "--count-penalty is deprecated; use --count-loss-weight" in messages
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["fusion"] == "gmu" and config["training"]["count_loss_weight"] == 0.5


def test_help_is_grouped_and_generated(run_cli):
    result = run_cli("train", "--help")
    assert result.code == 0
    sections = [line.rstrip(":") for line in result.out.splitlines() if line.endswith("options:")]
    assert sections[:5] == ["Data options", "Model options", "Training options", "Pretraining options", "Fusion plugin options"]
    assert "--out-dim" not in result.out
    assert "--cross-attn-heads" in result.out and "--perceiver-num-latents" in result.out  # from the plugins
    version = run_cli("--version")
    assert version.code == 0 and "version" in version.out
