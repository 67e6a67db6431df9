"""Baselines: a contract every registered baseline meets, the random forest's options, and
``run_baseline`` / ``aam baseline`` end to end on a tiny synthetic study."""

from __future__ import annotations

import warnings

import attrs
import numpy as np
import pandas as pd
import pytest

import aam_core
from aam_core.baseline import run_baseline
from aam_core.data.samples import MissingSamplesWarning
from aam_core.errors import ConfigError, DataError
from aam_core.interfaces import Baseline
from aam_core.specs import BaselineSpec
from aam_plugins.baselines.random_forest import RandomForestOptions, parse_max_features

REGISTERED = [info.name for info in aam_core.list_plugins("baseline")]
FAST = {"n_estimators": 12, "n_jobs": 1}


def fast_options(spec) -> object:
    """The plugin's options with a small forest where the plugin has such options."""
    if spec.options is None:
        return spec.make_options({})
    names = {f.name for f in attrs.fields(spec.options)}
    return spec.make_options({k: v for k, v in FAST.items() if k in names})


def run_aam(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """Run ``aam`` as the console script does; return exit status, stdout and stderr."""
    from aam_core.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def split_files(folder, train_ids, val_ids):
    train = folder / "train.txt"
    val = folder / "val.txt"
    train.write_text("\n".join(train_ids) + "\n")
    val.write_text("# validation\n" + "\n".join(val_ids) + "\n")
    return train, val


def base_args(data, train, val, output) -> list[str]:
    return [
        "baseline",
        "random-forest",
        "--table", str(data.table),
        "--metadata", str(data.metadata),
        "--metadata-column", "age",
        "--train-samples", str(train),
        "--val-samples", str(val),
        "--output", str(output),
        "--n-estimators", "15",
        "--n-jobs", "1",
    ]  # fmt: skip


# -- contract: every registered baseline ---------------------------------------------------------


def test_random_forest_is_registered():
    assert "random-forest" in REGISTERED
    spec = aam_core.get_plugin("baseline", "random-forest")
    assert isinstance(spec, BaselineSpec) and spec.options is RandomForestOptions


@pytest.mark.parametrize("name", REGISTERED)
def test_regression_contract(name):
    spec = aam_core.get_plugin("baseline", name)
    rng = np.random.default_rng(0)
    x = rng.random((24, 9))
    y = x[:, 0] * 10 + rng.normal(0, 0.1, 24)
    model = spec.factory(task="regression", options=fast_options(spec))
    assert isinstance(model, Baseline)
    assert model.fit(x[:18], y[:18]) is model
    predicted = model.predict(x[18:])
    assert predicted.shape == (6,)
    assert np.isfinite(predicted.astype(float)).all()


@pytest.mark.parametrize("name", REGISTERED)
def test_classification_contract(name):
    spec = aam_core.get_plugin("baseline", name)
    rng = np.random.default_rng(1)
    x = rng.random((30, 5))
    y = np.where(x[:, 0] > 0.5, "high", "low")
    model = spec.factory(task="classification", options=fast_options(spec))
    predicted = model.fit(x[:20], y[:20]).predict(x[20:])
    assert predicted.shape == (10,)
    assert set(predicted.astype(str)) <= {"high", "low"}


# -- random forest options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("sqrt", "sqrt"), ("LOG2", "log2"), ("all", None), ("0.3", 0.3), ("1.0", 1.0), ("50", 50)],
)
def test_max_features_parsing(text, expected):
    assert parse_max_features(text) == expected


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"max_features": "half"}, "--max-features"),
        ({"max_features": "1.5"}, "--max-features"),
        ({"max_features": "0"}, "--max-features"),
        ({"n_estimators": 0}, "--n-estimators"),
        ({"n_jobs": 0}, "--n-jobs"),
        ({"depth": 3}, "--depth"),
    ],
)
def test_bad_options_name_the_flag(values, flag):
    spec = aam_core.get_plugin("baseline", "random-forest")
    with pytest.raises(ConfigError, match=flag):
        spec.make_options(values)


def test_numeric_max_features_from_python():
    options = aam_core.get_plugin("baseline", "random-forest").make_options({"max_features": 0.5})
    assert options.max_features == "0.5"
    model = aam_core.get_plugin("baseline", "random-forest").factory(options=options)
    assert model.model.max_features == 0.5


def test_unknown_task_is_refused():
    with pytest.raises(ConfigError, match="classification, regression"):
        aam_core.get_plugin("baseline", "random-forest").factory(task="ranking")


def test_cli_defaults_match_the_options_class():
    from aam_core.cli.baseline import OPTION_FLAGS, command

    defaults = {p.name: p.default for p in command.params}
    for name in OPTION_FLAGS:
        assert defaults[name] == attrs.fields_dict(RandomForestOptions)[name].default


# -- run_baseline --------------------------------------------------------------------------------


def test_run_baseline_api(tiny_data, tmp_path):
    ids = tiny_data.sample_ids
    result = run_baseline(
        "random-forest",
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="age",
        train_samples=ids[:22],
        val_samples=ids[22:],
        output=tmp_path / "new" / "deeper" / "rf.tsv",
        options={"n_estimators": 10, "n_jobs": 1},
    )
    assert result.output.is_file() and result.plot == tmp_path / "new" / "deeper" / "rf.png"
    assert result.plot.is_file()
    assert result.n_train == 22 and result.n_val == len(ids) - 22
    # features with no reads in the training samples are removed
    assert result.n_features == int((tiny_data.counts[:22].sum(axis=0) > 0).sum())
    assert set(result.metrics) == {"mae", "rmse", "r2", "n"}
    assert not list(result.output.parent.glob(".*tmp*"))  # no temporary file left behind
    written = pd.read_csv(result.output, sep="\t", dtype={"sample_id": str})
    assert list(written.columns) == ["sample_id", "actual", "predicted"]
    pd.testing.assert_frame_equal(written, result.predictions, check_dtype=False)


def test_counts_and_relative_features_differ_only_in_scale(tiny_data, tmp_path):
    ids = tiny_data.sample_ids
    common = dict(
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="age",
        train_samples=ids[:20],
        val_samples=ids[20:],
        options={"n_estimators": 10, "n_jobs": 1},
    )
    relative = run_baseline("random-forest", output=tmp_path / "rel.tsv", **common)
    counts = run_baseline(
        "random-forest", output=tmp_path / "counts.tsv", features="counts", **common
    )
    assert relative.n_features == counts.n_features
    with pytest.raises(ConfigError, match="--features"):
        run_baseline("random-forest", output=tmp_path / "x.tsv", features="presence", **common)


def test_overlapping_lists_are_refused(tiny_data, tmp_path):
    ids = tiny_data.sample_ids
    with pytest.raises(DataError, match="1 samples are in both"):
        run_baseline(
            "random-forest",
            table=tiny_data.table,
            metadata=tiny_data.metadata,
            metadata_column="age",
            train_samples=ids[:20],
            val_samples=ids[19:],
            output=tmp_path / "rf.tsv",
        )


def test_classification_end_to_end(tiny_data, tmp_path):
    ids = tiny_data.sample_ids
    result = run_baseline(
        "random-forest",
        table=tiny_data.table,
        metadata=tiny_data.metadata,
        metadata_column="site",
        train_samples=ids[:20],
        val_samples=ids[20:],
        output=tmp_path / "rf.tsv",
        classifier=True,
        options={"n_estimators": 10, "n_jobs": 1},
    )
    assert set(result.metrics) == {"accuracy", "f1", "n"}
    assert result.plot is None and not (tmp_path / "rf.png").exists()
    assert list(result.predictions["actual"]) == list(tiny_data.site[20:])


# -- aam baseline --------------------------------------------------------------------------------


def test_cli_end_to_end(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, [*ids[:20], "ghost-1", "ghost-2"], ids[20:])
    output = tmp_path / "out" / "rf.tsv"
    with pytest.warns(MissingSamplesWarning, match=r"2 training samples of 22 .* e\.g\. 'ghost-1'"):
        code, out, err = run_aam(base_args(tiny_data, train, val, output), capsys, monkeypatch)
    assert code == 0, err
    assert "20 training, 10 validation" in out
    assert "features" in out
    metrics_line = next(line for line in out.splitlines() if line.startswith("random-forest:"))
    assert metrics_line.index("R²") < metrics_line.index("MAE") < metrics_line.index("RMSE")
    assert str(output) in out and str(output.with_suffix(".png")) in out
    assert output.is_file() and output.with_suffix(".png").is_file()

    written = pd.read_csv(output, sep="\t", dtype={"sample_id": str})
    assert list(written["sample_id"]) == ids[20:]
    expected = dict(zip(tiny_data.sample_ids, tiny_data.age, strict=True))
    np.testing.assert_allclose(written["actual"], [expected[s] for s in written["sample_id"]])


def test_cli_no_usable_training_samples(tiny_data, tmp_path, capsys, monkeypatch):
    train, val = split_files(tmp_path, ["ghost-1", "ghost-2"], tiny_data.sample_ids[20:])
    output = tmp_path / "rf.tsv"
    with pytest.warns(MissingSamplesWarning):
        code, out, err = run_aam(base_args(tiny_data, train, val, output), capsys, monkeypatch)
    assert code == 2
    assert err.startswith("aam: error: No usable training samples")
    assert len(err.strip().splitlines()) == 1
    assert not output.exists() and not output.with_suffix(".png").exists()


def test_cli_classifier_prints_accuracy(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    args = base_args(tiny_data, train, val, tmp_path / "rf.tsv")
    args[args.index("age")] = "site"
    code, out, err = run_aam([*args, "--classifier"], capsys, monkeypatch)
    assert code == 0, err
    assert "accuracy" in out and "F1" in out and "R²" not in out
    assert "Plot:" not in out


def test_cli_option_a_baseline_lacks(tiny_data, tmp_path, capsys, monkeypatch):
    """A flag given for a baseline without that option is refused by name."""
    from aam_core import hookimpl, plugins

    class MeanBaseline(Baseline):
        def fit(self, x, y):
            del x
            self.mean = float(np.mean(y))
            return self

        def predict(self, x):
            return np.full(len(x), self.mean)

    class MeanPlugin:
        @hookimpl
        def aam_baselines(self):
            return [
                BaselineSpec(name="mean", factory=lambda **_: MeanBaseline(), description="mean")
            ]

    registry = plugins.PluginRegistry()
    registry.register(MeanPlugin(), "mean-plugin")
    monkeypatch.setattr(plugins, "_default", registry)
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    args = base_args(tiny_data, train, val, tmp_path / "mean.tsv")
    args[1] = "mean"
    code, _, err = run_aam(args, capsys, monkeypatch)
    assert code == 2
    assert "--n-estimators, --n-jobs does not apply to baseline 'mean'" in err

    without_flags = args[: args.index("--n-estimators")]
    code, out, err = run_aam(without_flags, capsys, monkeypatch)
    assert code == 0, err
    assert "mean: R²" in out


def test_cli_list(capsys, monkeypatch):
    code, out, _ = run_aam(["baseline", "--list"], capsys, monkeypatch)
    assert code == 0
    assert "random-forest" in out and "baseline" in out


def test_cli_missing_option(tiny_data, capsys, monkeypatch):
    code, _, err = run_aam(
        ["baseline", "random-forest", "--table", str(tiny_data.table)], capsys, monkeypatch
    )
    assert code == 2
    assert "--metadata" in err
