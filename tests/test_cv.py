"""``cross_validate`` and ``aam cv``: identical folds for AAM and the baseline, groups kept whole,
and no selection that sees the samples it is scored on.

AAM's training is replaced by a stand-in that predicts the training mean and records the samples
it was given, so these tests check the cross-validation bookkeeping, not the network; one test at
the end runs the real thing, tiny.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from test_baselines import run_aam

import aam_core.cv
from aam_core.cv import cross_validate
from aam_core.errors import ConfigError, DataError
from aam_core.training.metrics import compute_metrics

RF = {"n_estimators": 10, "n_jobs": 1}


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"sample_id": str})


class FakeTrain:
    """Stands in for ``aam_core.api.train``: records each call's samples and predicts the
    validation and test samples from the training samples alone (their mean target or, with
    ``classifier=True``, their commonest class and class shares)."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(
        self,
        *,
        metadata,
        metadata_column,
        output_dir,
        train_samples,
        val_samples,
        test_samples,
        **rest,
    ):
        self.calls.append(
            dict(
                output_dir=Path(output_dir),
                train=list(train_samples),
                val=list(val_samples),
                test=list(test_samples),
                **rest,
            )
        )
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        frame = pd.read_csv(metadata, sep="\t", comment=None, dtype=str)
        values = frame[frame["sample-id"] != "#q2:types"].set_index("sample-id")[metadata_column]
        trained = values[list(train_samples)]

        def predict(ids):
            ids = list(ids)
            out = pd.DataFrame({"sample_id": ids, "actual": values[ids].to_numpy()})
            if not rest.get("classifier"):
                out["actual"] = out["actual"].astype(float)
                out["predicted"] = trained.astype(float).mean()
                return out
            shares = trained.value_counts(normalize=True).sort_index()
            out["predicted"] = shares.idxmax()
            for label, share in shares.items():
                out[label] = share
            return out

        return SimpleNamespace(
            predictions=predict(val_samples),
            test_predictions=predict(test_samples),
            metrics={"mae": 0.0},
        )


@pytest.fixture
def fake_train(monkeypatch) -> FakeTrain:
    fake = FakeTrain()
    monkeypatch.setattr(aam_core.cv, "train", fake)
    return fake


@pytest.fixture
def baseline_calls(monkeypatch) -> list[dict]:
    """The keyword arguments of every ``run_baseline`` call (the real baseline still runs)."""
    calls: list[dict] = []
    real = aam_core.cv.run_baseline

    def recording(name, **kwargs):
        calls.append(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(aam_core.cv, "run_baseline", recording)
    return calls


@pytest.fixture
def study(tiny_data):
    """The tiny data with a ``subject`` column: 10 subjects of 3 samples each."""
    return tiny_data.with_column(
        "subject", [f"P{i // 3}" for i in range(len(tiny_data.sample_ids))]
    )


def subject_of(study) -> dict[str, str]:
    return {s: f"P{i // 3}" for i, s in enumerate(study.sample_ids)}


def run(study, output_dir, **kwargs):
    values = dict(
        table=study.table,
        metadata=study.metadata,
        metadata_column="age",
        folds=3,
        output_dir=output_dir,
        baseline_options=RF,
    )
    return cross_validate(**{**values, **kwargs})


def test_group_by_keeps_subjects_whole(study, tmp_path, fake_train, baseline_calls):
    out = tmp_path / "cv"
    result = run(study, out, group_by="subject", epochs=1, fusion="gmu")

    folds = read_tsv(out / "folds.tsv")
    assert sorted(folds["sample_id"]) == sorted(study.sample_ids)
    assert set(folds["fold"]) == {1, 2, 3}
    subject = subject_of(study)
    assert (folds.groupby(folds["sample_id"].map(subject))["fold"].nunique() == 1).all()

    assert len(fake_train.calls) == len(baseline_calls) == 3
    for k, (call, forest) in enumerate(zip(fake_train.calls, baseline_calls, strict=True), start=1):
        assert call["output_dir"] == out / f"fold-{k}" / "aam"
        assert call["epochs"] == 1 and call["fusion"] == "gmu" and call["force"] is False
        # AAM is scored on the outer fold; it trains and selects on the rest, never on the fold
        assert sorted(call["test"]) == sorted(folds.loc[folds["fold"] == k, "sample_id"])
        assert call["val"] and call["train"]
        assert sorted(call["train"] + call["val"] + call["test"]) == sorted(study.sample_ids)
        sides = [{subject[s] for s in call[side]} for side in ("train", "val", "test")]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        # folds.tsv records each sample's role in this fold
        roles = folds.set_index("sample_id")[f"role_{k}"]
        for side in ("train", "val", "test"):
            assert sorted(roles[roles == side].index) == sorted(call[side])
        # the baseline fits on the same training samples (inner validation included) and
        # predicts the same outer fold
        assert [list(forest[s]) for s in ("train_samples", "val_samples", "test_samples")] == [
            call["train"],
            call["val"],
            call["test"],
        ]
        assert forest["rarefy_depth"] is None
        rf = read_tsv(out / f"fold-{k}" / "random-forest.tsv")
        assert sorted(rf["sample_id"]) == sorted(call["test"])
        assert (out / f"fold-{k}" / "random-forest.png").is_file()

    truth = dict(zip(study.sample_ids, study.age, strict=True))
    fold_of = dict(zip(folds["sample_id"], folds["fold"], strict=True))
    for model in ("aam", "random-forest"):
        pooled = read_tsv(out / f"pooled_{model}.tsv")
        assert sorted(pooled["sample_id"]) == sorted(study.sample_ids)  # each exactly once
        assert list(pooled.columns) == ["sample_id", "actual", "predicted", "fold"]
        np.testing.assert_allclose(pooled["actual"], pooled["sample_id"].map(truth))
        assert dict(zip(pooled["sample_id"], pooled["fold"], strict=True)) == fold_of
    # each AAM prediction comes from the fold that held the sample out (the fake predicts the
    # mean of that fold's training samples)
    pooled = read_tsv(out / "pooled_aam.tsv")
    fold_mean = {
        k: np.mean([truth[s] for s in c["train"]]) for k, c in enumerate(fake_train.calls, 1)
    }
    np.testing.assert_allclose(pooled["predicted"], pooled["fold"].map(fold_mean))

    saved = json.loads((out / "cv_metrics.json").read_text())
    assert saved == result.metrics
    assert set(saved["models"]) == {"aam", "random-forest"}
    assert saved["val_fraction"] == 0.2 and saved["rarefy_depth"] is None
    sizes = [[len(c[s]) for s in ("train", "val", "test")] for c in fake_train.calls]
    assert [[f["train"], f["val"], f["test"]] for f in saved["samples"]] == sizes
    aam = saved["models"]["aam"]
    assert [f["fold"] for f in aam["folds"]] == [1, 2, 3]
    maes = [f["mae"] for f in aam["folds"]]
    assert aam["mean"]["mae"] == pytest.approx(np.mean(maes))
    assert aam["sd"]["mae"] == pytest.approx(np.std(maes, ddof=1))
    assert aam["pooled"]["n"] == len(study.sample_ids)
    assert [f["n"] for f in aam["folds"]] == [len(c["test"]) for c in fake_train.calls]

    summary = result.summary
    assert list(dict.fromkeys(summary["model"])) == ["aam", "random-forest", "difference"]
    assert set(summary["metric"]) == {"mae", "rmse", "r2"}
    row = summary[(summary["model"] == "aam") & (summary["metric"] == "mae")].iloc[0]
    assert row["mean"] == pytest.approx(aam["mean"]["mae"])
    assert [f.test for f in result.splits] == [c["test"] for c in fake_train.calls]


def test_inner_split_follows_val_fraction_and_strata(study, tmp_path, fake_train):
    """The inner validation is 1 in round(1 / val_fraction) of each training fold, each site
    keeping its share; stratification of the outer folds is unchanged."""
    result = run(study, tmp_path / "cv", stratify_by="site", baseline=None, val_fraction=0.25)
    assert len(fake_train.calls) == 3
    assert set(result.predictions) == {"aam"}
    assert result.metrics["difference"] is None
    assert set(result.summary["model"]) == {"aam"}
    assert not (tmp_path / "cv" / "pooled_random-forest.tsv").exists()
    sites = dict(zip(study.sample_ids, study.site, strict=True))
    counts = result.folds.groupby(result.folds["sample_id"].map(sites))["fold"].value_counts()
    for site in set(study.site):
        per_fold = counts[site]
        assert per_fold.max() - per_fold.min() <= 1
    for call in fake_train.calls:
        assert not set(call["val"]) & set(call["test"])
        assert not set(call["train"]) & set(call["test"])
        assert not set(call["train"]) & set(call["val"])
        held = call["train"] + call["val"]
        for site in set(study.site):
            in_training = sum(sites[s] == site for s in held)
            in_val = sum(sites[s] == site for s in call["val"])
            assert in_training // 4 <= in_val <= -(-in_training // 4)


@pytest.mark.parametrize("columns", [["site"], []])
def test_the_baseline_sees_aams_categorical_columns(study, tmp_path, fake_train, baseline_calls, columns):
    """AAM given ``site`` and the forest not would be a comparison with a thumb on the scale."""
    run(study, tmp_path / "cv", categorical_columns=columns)
    assert len(baseline_calls) == len(fake_train.calls) == 3
    assert all(call["categorical_columns"] == columns for call in baseline_calls)


@pytest.mark.usefixtures("fake_train")
def test_paired_difference_is_aam_minus_baseline(study, tmp_path):
    out = tmp_path / "cv"
    result = run(study, out)
    metrics = json.loads((out / "cv_metrics.json").read_text())
    aam, rf = metrics["models"]["aam"], metrics["models"]["random-forest"]
    difference = metrics["difference"]
    assert difference["model"] == "aam" and difference["baseline"] == "random-forest"
    for name in ("mae", "rmse", "r2"):
        paired = [a[name] - b[name] for a, b in zip(aam["folds"], rf["folds"], strict=True)]
        assert [f[name] for f in difference["folds"]] == pytest.approx(paired)
        assert difference["mean"][name] == pytest.approx(np.mean(paired))
        assert difference["sd"][name] == pytest.approx(np.std(paired, ddof=1))
        assert difference["pooled"][name] == pytest.approx(aam["pooled"][name] - rf["pooled"][name])
        row = result.summary.set_index(["model", "metric"]).loc[("difference", name)]
        assert row["mean"] == pytest.approx(np.mean(paired))
    # the per-fold and pooled metrics are those of the outer folds' predictions
    for model, entry in (("aam", aam), ("random-forest", rf)):
        pooled = read_tsv(out / f"pooled_{model}.tsv")
        for fold in entry["folds"]:
            part = pooled[pooled["fold"] == fold["fold"]]
            expected = compute_metrics(part["actual"], part["predicted"], False)
            assert {k: fold[k] for k in expected} == pytest.approx(expected)
        assert entry["pooled"] == pytest.approx(
            compute_metrics(pooled["actual"], pooled["predicted"], False)
        )


def test_rarefy_depth_reaches_the_baseline(study, tmp_path, fake_train, baseline_calls):
    totals = study.counts.sum(axis=1)
    depth = int(np.sort(totals)[3])  # three samples are too shallow
    result = run(study, tmp_path / "cv", rarefy_depth=depth)
    deep = sorted(s for s, t in zip(study.sample_ids, totals, strict=True) if t >= depth)
    assert sorted(result.folds["sample_id"]) == deep
    assert len(baseline_calls) == 3
    for call, forest in zip(fake_train.calls, baseline_calls, strict=True):
        assert call["rarefy_depth"] == forest["rarefy_depth"] == depth
    for model in ("aam", "random-forest"):
        assert sorted(result.predictions[model]["sample_id"]) == deep
    assert result.metrics["rarefy_depth"] == depth


@pytest.mark.usefixtures("fake_train")
def test_classification_keeps_probabilities_and_auc(study, tmp_path):
    labels = ["yes" if i % 3 == 0 else "no" for i in range(len(study.sample_ids))]
    study.with_column("smoker", labels)
    out = tmp_path / "cv"
    result = run(study, out, metadata_column="smoker", classifier=True)
    truth = dict(zip(study.sample_ids, labels, strict=True))
    for model in ("aam", "random-forest"):
        pooled = read_tsv(out / f"pooled_{model}.tsv")
        assert list(pooled.columns) == ["sample_id", "actual", "predicted", "no", "yes", "fold"]
        assert sorted(pooled["sample_id"]) == sorted(study.sample_ids)
        assert (pooled["actual"] == pooled["sample_id"].map(truth)).all()
        entry = result.metrics["models"][model]
        for fold in entry["folds"]:
            part = pooled[pooled["fold"] == fold["fold"]]
            assert fold["auc"] == pytest.approx(roc_auc_score(part["actual"] == "yes", part["yes"]))
        assert entry["pooled"]["auc"] == pytest.approx(
            roc_auc_score(pooled["actual"] == "yes", pooled["yes"])
        )
    difference = result.metrics["difference"]
    assert set(difference["mean"]) == {"accuracy", "f1", "auc"}
    models = result.metrics["models"]
    paired = [
        a["auc"] - b["auc"]
        for a, b in zip(models["aam"]["folds"], models["random-forest"]["folds"], strict=True)
    ]
    assert [f["auc"] for f in difference["folds"]] == pytest.approx(paired)


def test_existing_output_needs_force(study, tmp_path, fake_train):
    out = tmp_path / "cv"
    run(study, out, baseline=None)
    with pytest.raises(ConfigError, match="--force"):
        run(study, out, baseline=None)
    assert len(fake_train.calls) == 3  # refused before any training
    run(study, out, baseline=None, force=True)
    assert fake_train.calls[-1]["force"] is True


@pytest.mark.parametrize(
    ("error", "match", "kwargs"),
    [
        (DataError, "'nope'", dict(group_by="nope")),
        (ConfigError, "--n-estimators", dict(baseline_options={"n_estimators": -1})),
        (ConfigError, "--not-an-option", dict(not_an_option=3)),
        (ConfigError, "train_samples", dict(train_samples=["S000"])),
        (ConfigError, "test_samples", dict(test_samples=["S000"])),
        (ConfigError, "--test-fraction", dict(test_fraction=0.2)),
        (DataError, "--folds", dict(folds=1)),
        (DataError, "--val-fraction 0.8", dict(val_fraction=0.8)),
        # 2 folds of 10 subjects: 5 training subjects cannot make 10 inner folds
        (
            DataError,
            r"Fold 1: .*--val-fraction 0.1.*--folds",
            dict(group_by="subject", folds=2, val_fraction=0.1),
        ),
    ],
)
def test_bad_input_fails_before_anything_is_written(
    study, tmp_path, fake_train, error, match, kwargs
):
    with pytest.raises(error, match=match):
        run(study, tmp_path / "cv", **kwargs)
    assert fake_train.calls == []
    assert not (tmp_path / "cv").exists()


def cli_args(study, out, *extra):
    return [
        "cv",
        "--table", str(study.table),
        "--metadata", str(study.metadata),
        "--metadata-column", "age",
        "--folds", "3",
        "--group-by", "subject",
        "--output-dir", str(out),
        "--epochs", "2",
        "--lr", "0.001",
        *(f for key, value in RF.items() for f in ("--baseline-option", f"{key}={value}")),
        *extra,
    ]  # fmt: skip


def test_cli(study, tmp_path, fake_train, capsys, monkeypatch):
    out = tmp_path / "cv"
    args = cli_args(study, out, "--val-fraction", "0.5")
    code, stdout, err = run_aam(args, capsys, monkeypatch)
    assert code == 0, err
    lines = [line for line in stdout.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Pooled"))
    means = {line.split()[0]: line for line in lines[:start]}
    pooled = {line.split()[0]: line for line in lines[start:]}
    for model in ("aam", "random-forest", "difference"):
        assert "±" in means[model] and model in pooled and "±" not in pooled[model]
    assert "MAE" in means["model"] and "R²" in means["model"]
    assert "(difference: aam − random-forest, paired by fold)" in stdout
    # only the flags given reach train(), plus the one seed that also drew the folds
    extra = {k for k in fake_train.calls[0] if k not in ("output_dir", "train", "val", "test")}
    assert extra == {"table", "epochs", "lr", "val_fraction", "force", "seed"}
    assert fake_train.calls[0]["seed"] == 42
    assert fake_train.calls[0]["epochs"] == 2 and fake_train.calls[0]["lr"] == 0.001
    # --val-fraction 0.5: the inner validation is half of each training fold's subjects
    subject = subject_of(study)
    for call in fake_train.calls:
        held = {subject[s] for s in call["train"] + call["val"]}
        assert len({subject[s] for s in call["val"]}) in (len(held) // 2, -(-len(held) // 2))

    code, _, err = run_aam(args, capsys, monkeypatch)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1

    bad = cli_args(study, tmp_path / "other", "--val-fraction", "0.9")
    code, _, err = run_aam(bad, capsys, monkeypatch)
    assert code == 2 and "--val-fraction 0.9" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()


def test_real_training_tiny(study, tmp_path):
    """The real ``aam_core.api.train`` on two folds of the tiny study (one epoch, tiny model):
    AAM scores exactly the outer fold and selects on the inner validation samples."""
    pytest.importorskip("aam_core.api")
    out = tmp_path / "cv"
    result = run(
        study,
        out,
        folds=2,
        group_by="subject",
        epochs=1,
        batch_size=8,
        embedding_dim=16,
        attention_heads=2,
        attention_layers=1,
        max_asvs=16,
        device="cpu",
    )
    folds = result.folds.set_index("sample_id")
    for k in (1, 2):
        run_dir = out / f"fold-{k}" / "aam"
        scored = read_tsv(run_dir / "test_predictions.tsv")
        assert sorted(scored["sample_id"]) == sorted(folds.index[folds["fold"] == k])
        selected = read_tsv(run_dir / "val_predictions.tsv")
        assert sorted(selected["sample_id"]) == sorted(folds.index[folds[f"role_{k}"] == "val"])
        assert not set(selected["sample_id"]) & set(scored["sample_id"])
    pooled = read_tsv(out / "pooled_aam.tsv")
    assert sorted(pooled["sample_id"]) == sorted(study.sample_ids)
    assert np.isfinite(pooled["predicted"]).all()
    assert set(result.summary["model"]) == {"aam", "random-forest", "difference"}


def test_samples_without_a_group_stay_together(study, tmp_path, fake_train, write_tsv):
    rows = [
        [s, a, "" if i < 4 else f"P{i // 3}"]
        for i, (s, a) in enumerate(zip(study.sample_ids, study.age, strict=True))
    ]
    write_tsv(study.metadata, ["sample-id", "age", "subject"], rows)
    with pytest.warns(UserWarning, match="4 samples have no 'subject' value"):
        result = run(study, tmp_path / "cv", group_by="subject", baseline=None)
    ungrouped = result.folds.set_index("sample_id").loc[study.sample_ids[:4]]
    assert ungrouped["fold"].nunique() == 1
    for k in (1, 2, 3):
        assert ungrouped[f"role_{k}"].nunique() == 1  # the inner split keeps them together too
    assert len(fake_train.calls) == 3
