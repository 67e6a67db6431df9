"""``cross_validate`` and ``aam cv``: identical folds for AAM and the baseline, groups kept whole.

AAM's training is replaced by a stand-in that predicts the training mean, so these tests check the
cross-validation bookkeeping, not the network; one test at the end runs the real thing, tiny.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_baselines import run_aam

import aam_core.cv
from aam_core.cv import cross_validate
from aam_core.errors import ConfigError, DataError

RF = {"n_estimators": 10, "n_jobs": 1}


class FakeTrain:
    """Stands in for ``aam_core.api.train``: predicts the training mean, records each call."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(
        self, *, metadata, metadata_column, output_dir, train_samples, val_samples, **rest
    ):
        self.calls.append(
            dict(
                output_dir=Path(output_dir),
                train=list(train_samples),
                val=list(val_samples),
                **rest,
            )
        )
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        frame = pd.read_csv(metadata, sep="\t", comment=None, dtype={"sample-id": str})
        frame = frame[frame["sample-id"] != "#q2:types"].set_index("sample-id")
        values = pd.to_numeric(frame[metadata_column])
        mean = float(values[list(train_samples)].mean())
        predictions = pd.DataFrame(
            {
                "sample_id": val_samples,
                "actual": values[list(val_samples)].to_numpy(),
                "predicted": mean,
            }
        )
        return SimpleNamespace(predictions=predictions, metrics={"mae": 0.0})


@pytest.fixture
def fake_train(monkeypatch) -> FakeTrain:
    fake = FakeTrain()
    monkeypatch.setattr(aam_core.cv, "train", fake)
    return fake


@pytest.fixture
def study(tiny_data):
    """The tiny data with a ``subject`` column: 10 subjects of 3 samples each."""
    return tiny_data.with_column("subject", [f"P{i // 3}" for i in range(len(tiny_data.sample_ids))])


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


def test_group_by_keeps_subjects_whole(study, tmp_path, fake_train):
    out = tmp_path / "cv"
    result = run(study, out, group_by="subject", epochs=1, fusion="gmu")

    folds = pd.read_csv(out / "folds.tsv", sep="\t", dtype={"sample_id": str})
    assert sorted(folds["sample_id"]) == sorted(study.sample_ids)
    assert set(folds["fold"]) == {1, 2, 3}
    subject = {s: f"P{i // 3}" for i, s in enumerate(study.sample_ids)}
    folds_per_subject = folds.groupby(folds["sample_id"].map(subject))["fold"].nunique()
    assert (folds_per_subject == 1).all()

    assert len(fake_train.calls) == 3
    for k, call in enumerate(fake_train.calls, start=1):
        assert call["output_dir"] == out / f"fold-{k}" / "aam"
        assert call["epochs"] == 1 and call["fusion"] == "gmu" and call["force"] is False
        assert not set(call["train"]) & set(call["val"])
        assert sorted(call["val"]) == sorted(folds.loc[folds["fold"] == k, "sample_id"])
        assert not {subject[s] for s in call["train"]} & {subject[s] for s in call["val"]}
        rf = pd.read_csv(
            out / f"fold-{k}" / "random-forest.tsv", sep="\t", dtype={"sample_id": str}
        )
        assert sorted(rf["sample_id"]) == sorted(call["val"])  # the same held-out samples
        assert (out / f"fold-{k}" / "random-forest.png").is_file()

    for model in ("aam", "random-forest"):
        pooled = pd.read_csv(out / f"pooled_{model}.tsv", sep="\t", dtype={"sample_id": str})
        assert sorted(pooled["sample_id"]) == sorted(study.sample_ids)  # each exactly once
        assert list(pooled.columns) == ["sample_id", "actual", "predicted", "fold"]
        truth = dict(zip(study.sample_ids, study.age, strict=True))
        np.testing.assert_allclose(pooled["actual"], pooled["sample_id"].map(truth))
        assert dict(zip(pooled["sample_id"], pooled["fold"], strict=True)) == dict(
            zip(folds["sample_id"], folds["fold"], strict=True)
        )

    saved = json.loads((out / "cv_metrics.json").read_text())
    assert saved == result.metrics
    assert set(saved["models"]) == {"aam", "random-forest"}
    aam = saved["models"]["aam"]
    assert [f["fold"] for f in aam["folds"]] == [1, 2, 3]
    maes = [f["mae"] for f in aam["folds"]]
    assert aam["mean"]["mae"] == pytest.approx(np.mean(maes))
    assert aam["sd"]["mae"] == pytest.approx(np.std(maes, ddof=1))
    assert aam["pooled"]["n"] == len(study.sample_ids)

    summary = result.summary
    assert set(summary["model"]) == {"aam", "random-forest"}
    assert set(summary["metric"]) == {"mae", "rmse", "r2"}
    row = summary[(summary["model"] == "aam") & (summary["metric"] == "mae")].iloc[0]
    assert row["mean"] == pytest.approx(aam["mean"]["mae"])


def test_stratify_by_balances_sites(study, tmp_path, fake_train):
    result = run(study, tmp_path / "cv", stratify_by="site", baseline=None)
    assert len(fake_train.calls) == 3
    assert set(result.predictions) == {"aam"}
    assert not (tmp_path / "cv" / "pooled_random-forest.tsv").exists()
    sites = dict(zip(study.sample_ids, study.site, strict=True))
    counts = result.folds.groupby(result.folds["sample_id"].map(sites))["fold"].value_counts()
    for site in set(study.site):
        per_fold = counts[site]
        assert per_fold.max() - per_fold.min() <= 1


def test_existing_output_needs_force(study, tmp_path, fake_train):
    out = tmp_path / "cv"
    run(study, out, baseline=None)
    with pytest.raises(ConfigError, match="--force"):
        run(study, out, baseline=None)
    assert len(fake_train.calls) == 3  # refused before any training
    run(study, out, baseline=None, force=True)
    assert fake_train.calls[-1]["force"] is True


def test_bad_input_fails_before_training(study, tmp_path, fake_train):
    with pytest.raises(DataError, match="'nope'"):
        run(study, tmp_path / "a", group_by="nope")
    with pytest.raises(ConfigError, match="--n-estimators"):
        run(study, tmp_path / "b", baseline_options={"n_estimators": -1})
    with pytest.raises(ConfigError, match="--not-an-option"):
        run(study, tmp_path / "c", not_an_option=3)
    with pytest.raises(ConfigError, match="train_samples"):
        run(study, tmp_path / "d", train_samples=["S000"])
    with pytest.raises(DataError, match="--folds"):
        run(study, tmp_path / "e", folds=1)
    assert fake_train.calls == []


def test_cli(study, tmp_path, fake_train, capsys, monkeypatch):
    out = tmp_path / "cv"
    args = [
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
    ]  # fmt: skip
    code, stdout, err = run_aam(args, capsys, monkeypatch)
    assert code == 0, err
    rows = {line.split()[0]: line for line in stdout.splitlines() if line.strip()}
    assert "±" in rows["aam"] and "±" in rows["random-forest"]
    assert "MAE" in rows["model"] and "R²" in rows["model"]
    # only the flags given reach train(), plus the one seed that also drew the folds
    extra = {k for k in fake_train.calls[0] if k not in ("output_dir", "train", "val")}
    assert extra == {"table", "epochs", "lr", "force", "seed"}
    assert fake_train.calls[0]["seed"] == 42
    assert fake_train.calls[0]["epochs"] == 2 and fake_train.calls[0]["lr"] == 0.001

    code, _, err = run_aam(args, capsys, monkeypatch)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1


def test_real_training_tiny(study, tmp_path):
    """The real ``aam_core.api.train`` on two folds of the tiny study (one epoch, tiny model)."""
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
    pooled = pd.read_csv(out / "pooled_aam.tsv", sep="\t", dtype={"sample_id": str})
    assert sorted(pooled["sample_id"]) == sorted(study.sample_ids)
    assert np.isfinite(pooled["predicted"]).all()
    assert (out / "fold-1" / "aam" / "val_predictions.tsv").is_file()
    assert set(result.summary["model"]) == {"aam", "random-forest"}


def test_samples_without_a_group_stay_together(study, tmp_path, fake_train, write_tsv):
    rows = [
        [s, a, "" if i < 4 else f"P{i // 3}"]
        for i, (s, a) in enumerate(zip(study.sample_ids, study.age, strict=True))
    ]
    write_tsv(study.metadata, ["sample-id", "age", "subject"], rows)
    with pytest.warns(UserWarning, match="4 samples have no 'subject' value"):
        result = run(study, tmp_path / "cv", group_by="subject", baseline=None)
    assert result.folds.set_index("sample_id").loc[study.sample_ids[:4], "fold"].nunique() == 1
    assert len(fake_train.calls) == 3
