"""Baselines: a contract every registered baseline meets, the random forest's options, and
``run_baseline`` / ``aam baseline`` end to end on a tiny synthetic study."""

from __future__ import annotations

import logging
import warnings

import attrs
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import aam_core
from aam_core.baseline import run_baseline
from aam_core.data.samples import MissingSamplesWarning
from aam_core.errors import ConfigError, DataError
from aam_core.interfaces import Baseline
from aam_core.specs import BaselineSpec
from aam_plugins.baselines.random_forest import OOB_CHOICES, RandomForestOptions, parse_max_features

REGISTERED = [info.name for info in aam_core.list_plugins("baseline")]
FAST = {"n_estimators": 20, "max_features": "all", "n_jobs": 1}


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


def _mean_absolute_error(actual, predicted) -> float:
    return float(np.mean(np.abs(np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float))))


@pytest.mark.parametrize("name", REGISTERED)
def test_regression_contract(name):
    """y = 10·x₀: a baseline must learn it, far better than predicting the training mean."""
    spec = aam_core.get_plugin("baseline", name)
    rng = np.random.default_rng(0)
    x = rng.random((150, 6))
    y = x[:, 0] * 10 + rng.normal(0, 0.1, 150)
    model = spec.factory(task="regression", options=fast_options(spec))
    assert isinstance(model, Baseline)
    assert model.fit(x[:100], y[:100]) is model
    predicted = model.predict(x[100:])
    assert predicted.shape == (50,)
    assert np.isfinite(predicted.astype(float)).all()
    mean_error = _mean_absolute_error(y[100:], np.full(50, y[:100].mean()))
    assert _mean_absolute_error(y[100:], predicted) < 0.2 * mean_error
    assert skm.r2_score(y[100:], predicted) > 0.9
    assert model.predict_proba(x[100:]) is None  # no class probabilities for a regression


@pytest.mark.parametrize("name", REGISTERED)
def test_classification_contract(name):
    spec = aam_core.get_plugin("baseline", name)
    rng = np.random.default_rng(1)
    x = rng.random((90, 5))
    y = np.where(x[:, 0] > 0.5, "high", "low")
    model = spec.factory(task="classification", options=fast_options(spec))
    predicted = model.fit(x[:60], y[:60]).predict(x[60:])
    assert predicted.shape == (30,)
    assert set(predicted.astype(str)) <= {"high", "low"}
    assert skm.accuracy_score(y[60:], predicted.astype(str)) > 0.85
    probabilities = model.predict_proba(x[60:])
    if probabilities is not None:  # optional; when given, one column per class in classes_
        assert sorted(model.classes_) == ["high", "low"]
        assert probabilities.shape == (30, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        most_likely = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
        assert (most_likely == predicted.astype(str)).mean() > 0.9


def test_the_forest_gives_probabilities_and_importances():
    spec = aam_core.get_plugin("baseline", "random-forest")
    rng = np.random.default_rng(2)
    x = rng.random((60, 4))
    y = np.where(x[:, 2] > 0.5, "b", "a")
    model = spec.factory(task="classification", options=spec.make_options(FAST)).fit(x, y)
    assert model.classes_ == ["a", "b"]
    np.testing.assert_array_equal(model.predict_proba(x), model.model.predict_proba(x))
    importances = model.feature_importances()
    assert importances.shape == (4,) and importances.argmax() == 2
    assert spec.factory(task="classification").classes_ is None  # not fitted yet


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


def test_classification_writes_probabilities_and_a_confusion_matrix(tiny_data, tmp_path):
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
    assert set(result.metrics) == {"accuracy", "f1", "n"}  # three classes: no AUC
    assert list(result.predictions["actual"]) == list(tiny_data.site[20:])
    classes = sorted(set(tiny_data.site[:20]))
    written = pd.read_csv(result.output, sep="\t", dtype={"sample_id": str})
    assert list(written.columns) == ["sample_id", "actual", "predicted", *classes]
    np.testing.assert_allclose(written[classes].sum(axis=1), 1.0)
    most_likely = np.asarray(classes)[written[classes].to_numpy().argmax(axis=1)]
    assert (most_likely == written["predicted"]).mean() >= 0.8  # ties may break either way
    assert result.plot == tmp_path / "rf.confusion.png" and result.plot.is_file()
    assert result.roc_plot is None and not (tmp_path / "rf.roc.png").exists()
    assert not (tmp_path / "rf.png").exists()
    labels = sorted(set(written["actual"]) | set(written["predicted"]))
    assert list(result.report) == labels
    assert sum(v["support"] for v in result.report.values()) == 10


def test_two_classes_get_an_roc_curve_and_auc(tiny_data, tmp_path):
    ids = tiny_data.sample_ids
    data = tiny_data.with_column("smoker", ["yes" if i % 3 else "no" for i in range(len(ids))])
    result = run_baseline(
        "random-forest",
        table=data.table,
        metadata=data.metadata,
        metadata_column="smoker",
        train_samples=ids[:18],
        val_samples=ids[18:],
        output=tmp_path / "rf.tsv",
        classifier=True,
        options={"n_estimators": 10, "n_jobs": 1},
    )
    written = pd.read_csv(result.output, sep="\t", dtype={"sample_id": str})
    assert list(written.columns)[3:] == ["no", "yes"]
    expected = skm.roc_auc_score(written["actual"] == "yes", written["yes"])
    assert result.metrics["auc"] == pytest.approx(expected)
    assert result.roc_plot == tmp_path / "rf.roc.png" and result.roc_plot.is_file()


# -- honest comparison: test samples, rarefaction, a planted signal ------------------------------


def register_baseline(monkeypatch, name: str, make) -> None:
    """Make ``name`` the only baseline (``make()`` builds it), in a registry for this test."""
    from aam_core import hookimpl, plugins

    class Plugin:
        @hookimpl
        def aam_baselines(self):
            return [BaselineSpec(name=name, factory=lambda **_: make(), description=name)]

    registry = plugins.PluginRegistry()
    registry.register(Plugin(), f"{name}-plugin")
    monkeypatch.setattr(plugins, "_default", registry)


class Recorder(Baseline):
    """Predicts the training mean and keeps what it was given (in ``seen``)."""

    def __init__(self, seen: dict):
        self.seen = seen

    def fit(self, x, y):
        self.seen["fit"], self.seen["y"] = x, np.asarray(y, dtype=float)
        return self

    def predict(self, x):
        self.seen["predict"] = x
        return np.full(len(x), self.seen["y"].mean())


@pytest.fixture
def recorder(monkeypatch) -> dict:
    seen: dict = {}
    register_baseline(monkeypatch, "recorder", lambda: Recorder(seen))
    return seen


def run_recorder(data, tmp_path, **kwargs):
    values = dict(table=data.table, metadata=data.metadata, metadata_column="age")
    return run_baseline("recorder", output=tmp_path / "rec.tsv", **{**values, **kwargs})


def test_test_samples_fit_on_training_plus_validation(tiny_data, tmp_path, recorder):
    ids = tiny_data.sample_ids
    result = run_recorder(
        tiny_data, tmp_path, train_samples=ids[:15], val_samples=ids[15:22], test_samples=ids[22:]
    )
    assert recorder["fit"].shape[0] == 22 and recorder["predict"].shape[0] == 8
    np.testing.assert_allclose(recorder["y"], tiny_data.age[:22])
    assert (result.n_train, result.n_val, result.n_test) == (15, 7, 8)
    assert result.scored_on == "test"
    assert list(result.predictions["sample_id"]) == ids[22:]
    written = pd.read_csv(result.output, sep="\t", dtype={"sample_id": str})
    assert list(written["sample_id"]) == ids[22:]
    np.testing.assert_allclose(written["predicted"], tiny_data.age[:22].mean())
    assert result.n_features == int((tiny_data.counts[:22].sum(axis=0) > 0).sum())


def test_validation_samples_are_optional_with_test_samples(tiny_data, tmp_path, recorder):
    ids = tiny_data.sample_ids
    result = run_recorder(tiny_data, tmp_path, train_samples=ids[:15], test_samples=ids[22:])
    assert recorder["fit"].shape[0] == 15 and (result.n_val, result.n_test) == (0, 8)
    with pytest.raises(ConfigError, match="--val-samples .* or --test-samples"):
        run_recorder(tiny_data, tmp_path, train_samples=ids[:15])


def test_without_test_samples_validation_is_scored(tiny_data, tmp_path, recorder):
    ids = tiny_data.sample_ids
    result = run_recorder(tiny_data, tmp_path, train_samples=ids[:15], val_samples=ids[15:])
    assert recorder["fit"].shape[0] == 15 and recorder["predict"].shape[0] == 15
    assert result.scored_on == "validation" and result.n_test == 0


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ({"val_samples": slice(15, 23), "test_samples": slice(22, 30)}, "validation and test"),
        ({"test_samples": slice(10, 30)}, "training and test"),
    ],
)
def test_test_samples_must_be_disjoint(tiny_data, tmp_path, recorder, lists, message):
    ids = tiny_data.sample_ids
    lists = {key: ids[part] for key, part in lists.items()}
    with pytest.raises(DataError, match=f"samples are in both the {message} lists"):
        run_recorder(tiny_data, tmp_path, train_samples=ids[:15], **lists)
    assert "fit" not in recorder and not (tmp_path / "rec.tsv").exists()


def test_unknown_test_samples_are_refused(tiny_data, tmp_path, recorder):
    with pytest.warns(MissingSamplesWarning), pytest.raises(DataError, match="No usable test"):
        run_recorder(
            tiny_data, tmp_path, train_samples=tiny_data.sample_ids[:15], test_samples=["ghost"]
        )
    assert "fit" not in recorder and not list(tmp_path.glob("rec*"))


def test_rarefy_depth_gives_the_table_aam_sees(tiny_data, tmp_path, recorder):
    from aam_core.data.dataset import load_dataset

    totals = tiny_data.counts.sum(axis=1)
    depth = int(np.sort(totals)[8])  # the 8 samples with fewer reads are dropped
    ids = tiny_data.sample_ids
    kept = [s for s, total in zip(ids, totals, strict=True) if total >= depth]
    with pytest.warns(MissingSamplesWarning):
        result = run_recorder(
            tiny_data, tmp_path, train_samples=ids[:20], val_samples=ids[20:],
            features="counts", rarefy_depth=depth,
        )  # fmt: skip
    fit = recorder["fit"]
    assert result.n_train == len([s for s in ids[:20] if s in kept]) < 20
    np.testing.assert_allclose(fit.sum(axis=1), depth)  # every sample rarefied to the depth
    rarefied = load_dataset(tiny_data.config(rarefy_depth=depth))
    rows = rarefied.rows_of([s for s in ids[:20] if s in kept])
    expected = rarefied.counts[rows].toarray()
    np.testing.assert_array_equal(fit, expected[:, expected.sum(axis=0) > 0])


@pytest.fixture
def planted(tmp_path, write_biom, write_tsv):
    """90 samples × 30 ASVs; the target is 100 × the relative abundance of ASV 7, plus noise."""
    from conftest import random_sequences

    rng = np.random.default_rng(7)
    counts = rng.integers(1, 300, size=(90, 30)) * (rng.random((90, 30)) < 0.6)
    counts[:, 7] = rng.integers(0, 3000, size=90)
    counts[:, 0] += 1  # every sample has reads
    share = counts[:, 7] / counts.sum(axis=1)
    target = 100 * share + rng.normal(0, 0.5, 90)
    sequences = random_sequences(rng, 30)
    ids = [f"P{i:02d}" for i in range(90)]
    table = write_biom(tmp_path / "planted.biom", counts, sequences, ids)
    metadata = write_tsv(
        tmp_path / "planted.tsv", ["sample-id", "y"], [[s, f"{t:.4f}"] for s, t in zip(ids, target, strict=True)]
    )
    return table, metadata, ids, target, sequences[7]


def test_the_forest_finds_a_planted_signal(planted, tmp_path):
    table, metadata, ids, target, asv = planted
    result = run_baseline(
        "random-forest",
        table=table,
        metadata=metadata,
        metadata_column="y",
        train_samples=ids[:50],
        val_samples=ids[50:65],
        test_samples=ids[65:],
        output=tmp_path / "rf.tsv",
        # every ASV at every split: with sqrt(30) a tree often never meets the one that matters
        options={"n_estimators": 100, "max_features": "all", "n_jobs": 1},
    )
    actual = target[65:]
    np.testing.assert_allclose(result.predictions["actual"], actual, atol=1e-4)
    mean_error = _mean_absolute_error(actual, np.full(25, target[:65].mean()))
    assert result.metrics["mae"] < 0.25 * mean_error
    assert result.metrics["r2"] > 0.9
    importances = result.model.feature_importances()
    assert len(importances) == len(result.features) == result.n_features
    assert result.features[int(np.argmax(importances))] == asv


def _planted_forest(planted, output, metadata=None, **options):
    table, planted_metadata, ids, _, _ = planted
    return run_baseline(
        "random-forest", table=table, metadata=metadata or planted_metadata, metadata_column="y",
        train_samples=ids[:50], val_samples=ids[50:65], test_samples=ids[65:], output=output,
        options={"n_estimators": 100, "n_jobs": 1, **options},
    )  # fmt: skip


def test_the_default_forest_chooses_max_features_out_of_bag(planted, tmp_path):
    """``--max-features oob`` (the default) fits one forest per choice, scores each by its
    out-of-bag MAE on the samples it fitted, and predicts with the lowest: here, where one ASV
    of 30 sets the target, not ``sqrt`` (a split rarely gets to try that ASV), and the kept
    forest beats the ``sqrt`` one on the test samples too."""
    tuned = _planted_forest(planted, tmp_path / "tuned.tsv")
    model = tuned.model
    assert set(model.oob_errors) == set(OOB_CHOICES)
    assert model.max_features == min(model.oob_errors, key=model.oob_errors.get) != "sqrt"
    assert model.model.max_features == parse_max_features(model.max_features)
    fixed = _planted_forest(planted, tmp_path / "fixed.tsv", max_features=model.max_features)
    pd.testing.assert_frame_equal(tuned.predictions, fixed.predictions)  # the kept forest predicts
    assert fixed.model.oob_errors == {}  # a fixed choice fits one forest
    sqrt = _planted_forest(planted, tmp_path / "sqrt.tsv", max_features="sqrt")
    assert tuned.metrics["mae"] < 0.8 * sqrt.metrics["mae"], (tuned.metrics["mae"], sqrt.metrics["mae"])


def test_the_forest_chooses_without_the_scored_samples(planted, tmp_path, write_tsv):
    """The test samples' targets shuffled: same choice, same out-of-bag errors, same
    predictions — the choice is made on the fitted samples only."""
    table, metadata, ids, target, _ = planted
    shuffled = target.copy()
    shuffled[65:] = shuffled[65:][::-1] + 100.0
    rows = [[s, f"{t:.4f}"] for s, t in zip(ids, shuffled, strict=True)]
    other = write_tsv(tmp_path / "shuffled.tsv", ["sample-id", "y"], rows)
    first = _planted_forest(planted, tmp_path / "a.tsv")
    second = _planted_forest(planted, tmp_path / "b.tsv", metadata=other)
    assert first.model.oob_errors == second.model.oob_errors
    np.testing.assert_array_equal(first.predictions["predicted"], second.predictions["predicted"])
    assert not np.allclose(first.predictions["actual"], second.predictions["actual"])


def test_a_classifier_chooses_on_its_out_of_bag_error_rate():
    rng = np.random.default_rng(2)
    x = rng.random((120, 40))
    y = np.where(x[:, 3] > 0.5, "high", "low")
    options = aam_core.get_plugin("baseline", "random-forest").make_options({"n_estimators": 60, "n_jobs": 1})
    model = aam_core.get_plugin("baseline", "random-forest").factory(task="classification", options=options).fit(x, y)
    assert set(model.oob_errors) == set(OOB_CHOICES)
    assert all(0.0 <= e <= 1.0 for e in model.oob_errors.values())
    assert model.max_features == min(model.oob_errors, key=model.oob_errors.get)
    assert (model.predict(x) == y).mean() > 0.9


def test_category_indicators_come_from_the_fitted_samples(tiny_data):
    """One indicator per value the fitted samples hold; a value they lack, or none, sets none."""
    from aam_core.baseline import category_indicators
    from aam_core.config import DataConfig
    from aam_core.data.dataset import load_dataset

    study = tiny_data.with_column("study", ["s1", "s2", "", "s3"] * 7 + ["s1", "s9"])
    data = load_dataset(DataConfig(table=str(study.table), metadata=str(study.metadata), metadata_column="age", categorical_columns=["study", "site"]))
    values = data.column("study")
    fit = np.flatnonzero(values != "s3")
    x, names = category_indicators(data, ["study", "site"], fit)
    sites = sorted(set(data.column("site")[fit]))
    assert names == ["study=s1", "study=s2", "study=s9"] + [f"site={s}" for s in sites]
    assert x.shape == (len(values), len(names))
    for column, value in (("study", "s1"), ("study", "s9")):
        np.testing.assert_array_equal(x[:, names.index(f"{column}={value}")], values == value)
    lacking = (values == "s3") | (values == "")
    assert not x[lacking, :3].any() and (x[~lacking, :3].sum(axis=1) == 1).all()
    assert (x[:, 3:].sum(axis=1) == 1).all()  # every sample has a site the fitted ones hold


def test_the_forest_reads_categorical_columns_as_indicators(tmp_path, write_biom, write_tsv):
    """The target is set by the site alone and the ASVs are noise: given the site (as AAM is
    with --categorical-columns) the forest nearly nails it; without, it cannot."""
    from conftest import random_sequences

    rng = np.random.default_rng(4)
    ids = [f"C{i:02d}" for i in range(80)]
    sites = np.array(["north", "south", "east", "west"])[np.arange(80) % 4]
    offset = {"north": 10.0, "south": 30.0, "east": 50.0, "west": 70.0}
    target = np.array([offset[s] for s in sites]) + rng.normal(0, 1, 80)
    counts = rng.integers(1, 100, size=(80, 12))
    table = write_biom(tmp_path / "t.biom", counts, random_sequences(rng, 12), ids)
    metadata = write_tsv(tmp_path / "m.tsv", ["sample-id", "y", "site"], [[i, f"{t:.3f}", s] for i, t, s in zip(ids, target, sites, strict=True)])
    common = dict(table=table, metadata=metadata, metadata_column="y", train_samples=ids[:60], test_samples=ids[60:], options={"n_estimators": 60, "n_jobs": 1})
    given = run_baseline("random-forest", output=tmp_path / "given.tsv", categorical_columns=["site"], **common)
    blind = run_baseline("random-forest", output=tmp_path / "blind.tsv", **common)
    assert given.metrics["mae"] < 3.0 < 10.0 < blind.metrics["mae"], (given.metrics["mae"], blind.metrics["mae"])
    assert given.features[-4:] == ["site=east", "site=north", "site=south", "site=west"]
    assert given.n_features == blind.n_features + 4 == len(given.model.feature_importances())


# -- aam baseline --------------------------------------------------------------------------------


def test_cli_end_to_end(tiny_data, tmp_path, capsys, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="aam")
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, [*ids[:20], "ghost-1", "ghost-2"], ids[20:])
    output = tmp_path / "out" / "rf.tsv"
    with pytest.warns(MissingSamplesWarning, match=r"2 training samples of 22 .* e\.g\. 'ghost-1'"):
        code, out, err = run_aam(base_args(tiny_data, train, val, output), capsys, monkeypatch)
    assert code == 0, err
    assert "Samples: 20 training, 10 validation; " in out
    assert (out + err + caplog.text).count("20 training") == 1  # said once, not logged again
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


def test_cli_test_samples(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:15], ids[15:22])
    test = tmp_path / "test.txt"
    test.write_text("\n".join(ids[22:]) + "\n")
    output = tmp_path / "rf.tsv"
    args = [*base_args(tiny_data, train, val, output), "--test-samples", str(test)]
    code, out, err = run_aam(args, capsys, monkeypatch)
    assert code == 0, err
    assert "Samples: fitted on 15 training + 7 validation, scored on 8 test; " in out
    written = pd.read_csv(output, sep="\t", dtype={"sample_id": str})
    assert list(written["sample_id"]) == ids[22:]

    without_val = [a for a in args if a not in ("--val-samples", str(val))]
    code, out, err = run_aam(without_val, capsys, monkeypatch)
    assert code == 0, err
    assert "fitted on 15 training + 0 validation, scored on 8 test" in out


def test_cli_test_samples_naming_no_known_sample(tiny_data, tmp_path, capsys, monkeypatch):
    train, val = split_files(tmp_path, tiny_data.sample_ids[:15], tiny_data.sample_ids[15:22])
    test = tmp_path / "test.txt"
    test.write_text("ghost-1\nghost-2\n")
    output = tmp_path / "rf.tsv"
    args = [*base_args(tiny_data, train, val, output), "--test-samples", str(test)]
    with pytest.warns(MissingSamplesWarning, match="2 test samples of 2"):
        code, out, err = run_aam(args, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.startswith("aam: error: No usable test samples")
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("rf*"))


def test_cli_needs_validation_or_test_samples(tiny_data, tmp_path, capsys, monkeypatch):
    train, val = split_files(tmp_path, tiny_data.sample_ids[:15], tiny_data.sample_ids[15:])
    args = base_args(tiny_data, train, val, tmp_path / "rf.tsv")
    args = [a for a in args if a not in ("--val-samples", str(val))]
    code, out, err = run_aam(args, capsys, monkeypatch)
    assert code == 2 and out == ""
    assert "Missing option '--val-samples' (or give '--test-samples')" in err


def test_cli_rarefy_depth(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    totals = tiny_data.counts.sum(axis=1)
    depth = int(np.sort(totals)[8])
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    args = [*base_args(tiny_data, train, val, tmp_path / "rf.tsv"), "--rarefy-depth", str(depth)]
    with pytest.warns(MissingSamplesWarning):
        code, out, err = run_aam(args, capsys, monkeypatch)
    assert code == 0, err
    n_train, n_val = int((totals[:20] >= depth).sum()), int((totals[20:] >= depth).sum())
    assert f"Samples: {n_train} training, {n_val} validation; " in out


def test_cli_classifier_prints_accuracy_and_each_class(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    output = tmp_path / "rf.tsv"
    args = base_args(tiny_data, train, val, output)
    args[args.index("age")] = "site"
    code, out, err = run_aam([*args, "--classifier"], capsys, monkeypatch)
    assert code == 0, err
    assert "accuracy" in out and "F1" in out and "R²" not in out and "AUC" not in out
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.split()[:2] == ["class", "precision"]))
    written = pd.read_csv(output, sep="\t")
    labels = sorted(set(written["actual"]) | set(written["predicted"]))
    assert [line.split()[0] for line in lines[header + 1 : header + 1 + len(labels)]] == labels
    assert f"Confusion matrix: {tmp_path / 'rf.confusion.png'}" in out
    assert "Plot:" not in out and "ROC curve:" not in out


def test_cli_two_classes_print_auc_and_the_roc_curve(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    data = tiny_data.with_column("smoker", ["yes" if i % 3 else "no" for i in range(len(ids))])
    train, val = split_files(tmp_path, ids[:18], ids[18:])
    args = base_args(data, train, val, tmp_path / "rf.tsv")
    args[args.index("age")] = "smoker"
    code, out, err = run_aam([*args, "--classifier"], capsys, monkeypatch)
    assert code == 0, err
    metrics_line = next(line for line in out.splitlines() if line.startswith("random-forest:"))
    assert "AUC" in metrics_line
    assert f"ROC curve: {tmp_path / 'rf.roc.png'}" in out


def test_cli_option_a_baseline_lacks(tiny_data, tmp_path, capsys, monkeypatch):
    """A flag given for a baseline without that option is refused by name."""
    register_baseline(monkeypatch, "mean", lambda: Recorder({}))
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


@pytest.mark.parametrize("given", [None, "sqrt"])
def test_cli_says_which_max_features_the_forest_kept(tiny_data, tmp_path, capsys, monkeypatch, caplog, given):
    caplog.set_level(logging.INFO, logger="aam")
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    args = base_args(tiny_data, train, val, tmp_path / "rf.tsv") + (["--max-features", given] if given else [])
    code, out, err = run_aam(args, capsys, monkeypatch)
    assert code == 0, err
    said = [line for line in (out + err + caplog.text).splitlines() if "kept (out-of-bag MAE" in line]
    if given:
        assert not said
    else:
        assert len(said) == 1 and all(f" {choice} " in said[0] for choice in OOB_CHOICES[1:]), said


def test_cli_categorical_columns(tiny_data, tmp_path, capsys, monkeypatch):
    ids = tiny_data.sample_ids
    train, val = split_files(tmp_path, ids[:20], ids[20:])
    output = tmp_path / "rf.tsv"
    code, out, err = run_aam(base_args(tiny_data, train, val, output) + ["--categorical-columns", "site"], capsys, monkeypatch)
    assert code == 0, err
    sites = len(set(tiny_data.site[:20]))
    line = next(line for line in out.splitlines() if line.startswith("Samples:"))
    assert f"{sites} category indicators" in line, line
    assert len(pd.read_csv(output, sep="\t")) == 10
