"""Every target transform, end to end on real data (120 samples of the embedded oral-age demo):
whatever a person reads — ``val_predictions.tsv``, ``metrics.json``, TensorBoard, the plots and
``predict`` output — is in original units. Plus the deprecated target flags."""

from __future__ import annotations

import json
from types import SimpleNamespace

import biom
import h5py
import numpy as np
import pandas as pd
import pytest

from aam_core import list_plugins, load_model, predict, train
from aam_core.data.demo import demo_paths

TRANSFORMS = sorted(info.name for info in list_plugins("transform"))
N_TRAIN, N_VAL = 80, 40


pytestmark = pytest.mark.filterwarnings("ignore:.*longer than --max-bp:UserWarning")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 120-sample subset of the demo (table and metadata written to a temporary folder), its
    ages parsed exactly, and a fixed 80/40 split."""
    paths = demo_paths()
    metadata = pd.read_csv(paths.metadata, sep="\t", dtype=str).set_index("#SampleID")
    ids = list(np.random.default_rng(0).permutation(metadata.index.to_numpy())[: N_TRAIN + N_VAL])

    folder = tmp_path_factory.mktemp("oral-age-subset")
    table = biom.load_table(str(paths.table)).filter(ids, axis="sample", inplace=False)
    table = table.remove_empty(axis="observation", inplace=False)
    with h5py.File(folder / "table.biom", "w") as handle:
        table.to_hdf5(handle, "aam tests: oral-age demo subset")
    metadata.loc[ids].to_csv(folder / "metadata.tsv", sep="\t", index_label="#SampleID")
    subset = SimpleNamespace(table=folder / "table.biom", metadata=folder / "metadata.tsv")
    return subset, metadata["age"].astype(float), ids[:N_TRAIN], ids[N_TRAIN:]


def test_all_six_transforms_are_registered():
    assert set(TRANSFORMS) >= {
        "none",
        "minmax",
        "zscore",
        "zscore-category",
        "log-minmax",
        "log-zscore",
    }


@pytest.mark.parametrize("name", TRANSFORMS)
def test_everything_a_person_reads_is_in_original_units(
    name, demo, tiny_model, recorded_plots, read_tensorboard, tmp_path
):
    paths, ages, train_ids, val_ids = demo
    extra = {"normalize_by": "qiita_study_id"} if name == "zscore-category" else {}
    out = tmp_path / "run"
    result = train(
        table=paths.table,
        metadata=paths.metadata,
        metadata_column="age",
        target_transform=name,
        output_dir=out,
        train_samples=train_ids,
        val_samples=val_ids,
        **tiny_model,
        **extra,
    )
    assert result.config.training.target_transform == name

    frame = pd.read_csv(out / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    assert sorted(frame["sample_id"]) == sorted(val_ids)
    assert frame["actual"].tolist() == ages[frame["sample_id"]].tolist()  # exactly

    predicted = frame["predicted"].to_numpy()
    assert np.isfinite(predicted).all()
    if name == "none":
        # Model units are years: nothing to invert, and one epoch from initialisation cannot
        # reach adult ages, so the order-of-magnitude check below does not apply.
        inverse = result.model.encoding.transform.inverse_transform(np.array([0.5, 30.0]))
        np.testing.assert_array_equal(inverse, [0.5, 30.0])
    else:
        assert (predicted > 0).all() and (predicted < 10 * ages.max()).all()
        ratio = np.median(predicted) / np.median(ages[val_ids])
        assert 1 / 5 < ratio < 5, (np.median(predicted), np.median(ages[val_ids]))

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target_transform"] == name
    mae = float(np.mean(np.abs(frame["actual"] - frame["predicted"])))
    assert metrics["val"]["mae"] == pytest.approx(mae, rel=1e-9)

    events = read_tensorboard(out)
    logged = {e.step: e.value for e in events.Scalars("val/mae")}
    assert logged[metrics["best_epoch"]] == pytest.approx(metrics["val"]["mae"], rel=1e-6)

    assert len(recorded_plots) == 2  # the PNG and the TensorBoard figure
    for call in recorded_plots:
        np.testing.assert_array_equal(np.asarray(call.actual, dtype=float), frame["actual"])
        np.testing.assert_allclose(np.asarray(call.predicted, dtype=float), predicted, rtol=1e-12)

    loaded = load_model(out / "checkpoints" / "best.pt")
    again = predict(loaded, paths.table, metadata=paths.metadata)
    merged = frame.merge(again, on="sample_id", suffixes=("", "_again"))
    assert len(again) == N_TRAIN + N_VAL and len(merged) == N_VAL
    np.testing.assert_allclose(merged["predicted_again"], merged["predicted"], rtol=1e-5)
    assert (merged["actual_again"] == merged["actual"]).all()


# -- deprecated flags ------------------------------------------------------------------------------


@pytest.fixture
def with_study(tiny_data):
    """The tiny data with a numeric-looking ``qiita_study_id`` column, as in oral-age."""
    studies = [("550", "10317", "1841")[i % 3] for i in range(len(tiny_data.sample_ids))]
    return tiny_data.with_column("qiita_study_id", studies)


LEGACY = {
    "normalize-targets": (["--normalize-targets"], ["--target-transform", "minmax"]),
    "no-normalize-targets": (["--no-normalize-targets"], ["--target-transform", "none"]),
    "normalize-targets-by": (
        ["--normalize-targets-by", "qiita_study_id"],
        ["--target-transform", "zscore-category", "--normalize-by", "qiita_study_id"],
    ),
    "log-transform-targets": (["--log-transform-targets"], ["--target-transform", "log-minmax"]),
}


@pytest.mark.parametrize("case", list(LEGACY))
def test_legacy_flag_warns_and_behaves_like_its_replacement(
    case, with_study, tiny_model, as_flags, recorded_plots, run_cli, tmp_path
):
    del recorded_plots  # only for speed
    old, new = LEGACY[case]
    base = [
        "train",
        "--table",
        with_study.table,
        "--metadata",
        with_study.metadata,
        "--metadata-column",
        "age",
        *as_flags(tiny_model),
    ]
    with pytest.warns(FutureWarning, match="deprecated") as caught:
        result = run_cli(*base, *old, "--output-dir", tmp_path / "old")
    assert result.code == 0, result.err
    message = " ".join(str(w.message) for w in caught if w.category is FutureWarning)
    assert " ".join(new) in message

    result = run_cli(*base, *new, "--output-dir", tmp_path / "new")
    assert result.code == 0, result.err
    configs = [json.loads((tmp_path / d / "config.json").read_text()) for d in ("old", "new")]
    assert configs[0]["training"]["target_transform"] == new[1]
    assert configs[0]["training"] == configs[1]["training"]
    assert configs[0]["data"] == configs[1]["data"]
    assert (tmp_path / "old" / "val_predictions.tsv").read_text() == (
        tmp_path / "new" / "val_predictions.tsv"
    ).read_text()


@pytest.mark.parametrize(
    "flags",
    [
        ["--normalize-targets", "--target-transform", "minmax"],
        ["--no-normalize-targets", "--target-transform", "zscore"],
        ["--normalize-targets-by", "qiita_study_id", "--normalize-by", "qiita_study_id"],
        ["--log-transform-targets", "--target-transform", "log-zscore"],
    ],
    ids=["normalize", "no-normalize", "normalize-by", "log"],
)
def test_old_and_new_flags_together_are_an_error(
    flags, with_study, tiny_model, as_flags, run_cli, tmp_path
):
    result = run_cli(
        "train",
        "--table",
        with_study.table,
        "--metadata",
        with_study.metadata,
        "--metadata-column",
        "age",
        *as_flags(tiny_model),
        *flags,
        "--output-dir",
        tmp_path / "run",
    )
    assert result.code == 2
    assert result.err.startswith("aam: error:") and result.err.count("\n") == 1
    assert flags[0] in result.err or flags[0].replace("--no-", "--") in result.err
    assert "deprecated" in result.err
    assert not (tmp_path / "run").exists()
