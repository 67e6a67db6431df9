"""``aam_core.explain``: the methods find a planted signal, mean what they say and add up.

A model trained on data where one ASV's share of the reads sets the target must rank that ASV
first (occlusion and integrated gradients), as the random forest does; occlusion of an absent
ASV is zero and equals a prediction without the ASV (its reads kept in the total); integrated
gradients add up to prediction minus reference in model units and in original units; attention
weights are labelled as such and refused for the perceiver.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import biom
import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, random_sequences
from scipy import sparse

import aam_core
from aam_core.attribution import explain
from aam_core.attribution.agreement import forest_importance, spearman
from aam_core.attribution.data import load_explain_data
from aam_core.attribution.results import ATTENTION
from aam_core.data.batching import collate
from aam_core.errors import ConfigError

PLANTED_TRAINING = {
    "embedding_dim": 16,
    "attention_heads": 2,
    "attention_layers": 1,
    "batch_size": 8,
    "max_bp": 40,
    "epochs": 12,
    "lr": 0.005,
    "dropout": 0.0,
    "target_loss": "mse",  # squared error: the planted share is learnt within 12 epochs
    # The same model on every machine: the thresholds below were read off the CPU's (trained on
    # an H200, with bfloat16, the model's deletion-curve area was 0.42 years).
    "device": "cpu",
}


@attrs.frozen
class Planted:
    table: Path
    metadata: Path
    sample_ids: list[str]
    sequences: list[str]
    counts: np.ndarray  # [samples, features]; feature 0 is the planted ASV

    @property
    def planted(self) -> str:
        return self.sequences[0]


def write_planted(
    folder: Path, n_samples: int = 80, n_features: int = 30, seed: int = 1
) -> Planted:
    """Feature 0 is in 70% of the samples with a share of 10–60% of their reads, and the target
    is ``20 + 60 × share``; every other ASV is noise."""
    rng = np.random.default_rng(seed)
    sequences = random_sequences(rng, n_features, 30, 40)
    counts = np.zeros((n_samples, n_features), dtype=np.int64)
    share = np.where(rng.random(n_samples) < 0.7, rng.uniform(0.1, 0.6, n_samples), 0.0)
    for i in range(n_samples):
        k = int(rng.integers(4, 10))
        others = rng.choice(np.arange(1, n_features), size=k, replace=False)
        counts[i, others] = np.maximum(
            1, np.round(rng.dirichlet(np.ones(k)) * 1000 * (1 - share[i]))
        )
        counts[i, 0] = round(share[i] * counts[i].sum() / (1 - share[i]))
    target = np.round(20 + 60 * counts[:, 0] / counts.sum(axis=1), 2)
    ids = [f"P{i:03d}" for i in range(n_samples)]
    folder.mkdir(parents=True, exist_ok=True)
    table = biom.Table(counts.T.astype(float), sequences, ids)
    with h5py.File(folder / "table.biom", "w") as handle:
        table.to_hdf5(handle, "planted")
    metadata = folder / "metadata.tsv"
    metadata.write_text(
        "sample-id\tage\n" + "".join(f"{s}\t{a}\n" for s, a in zip(ids, target, strict=True))
    )
    return Planted(folder / "table.biom", metadata, ids, sequences, counts)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted data and a model trained on it (R² ≈ 0.8 on its validation samples)."""
    folder = tmp_path_factory.mktemp("planted")
    data = write_planted(folder / "data")
    aam_core.train(
        table=data.table,
        metadata=data.metadata,
        metadata_column="age",
        output_dir=folder / "run",
        **PLANTED_TRAINING,
    )
    return data, folder / "run" / "checkpoints" / "best.pt", folder / "run" / "train_samples.txt"


def _train_tiny(folder: Path, data, **options) -> Path:
    aam_core.train(
        table=data.table,
        metadata=data.metadata,
        metadata_column=options.pop("metadata_column", "age"),
        output_dir=folder,
        **{**TINY_MODEL, **options},
    )
    return folder / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def tiny_run(module_tiny_data, tmp_path_factory):
    """30 random samples and a one-epoch model (z-score transform, the default)."""
    data = module_tiny_data()
    return data, _train_tiny(tmp_path_factory.mktemp("tiny-run"), data)


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_planted_asv_ranks_first(planted, method):
    data, checkpoint, _ = planted
    result = explain(checkpoint, data.table, method=method, progress=False)
    importance = result.importance
    assert importance.index[0] == data.planted
    assert importance.iloc[0] > 3 * importance.iloc[1]
    # The planted ASV raises the prediction: its mean effect is positive, in years.
    assert result.explanation.mean_effect()[data.planted] > 1.0


def test_forest_ranks_planted_first_and_agrees_with_aam(planted):
    data, checkpoint, train_samples = planted
    forest = forest_importance(
        data.table, data.metadata, "age", train_samples, options={"n_estimators": 100, "n_jobs": 1}
    )
    assert forest.index[0] == data.planted
    for method in ("occlusion", "integrated-gradients"):
        aam = explain(
            checkpoint, data.table, method=method, samples=train_samples, progress=False
        ).importance
        assert spearman(aam, forest) > 0.0, method


def test_deletion_curves_beat_random_on_the_planted_model(planted):
    data, checkpoint, _ = planted
    curves = explain(checkpoint, data.table, faithfulness=True, progress=False).faithfulness
    top, chance = np.array(curves["top_k_change"]), np.array(curves["random_k_change"])
    assert len(top) == len(chance) == len(curves["k"]) == 20
    assert curves["area_between"] == pytest.approx(float((top - chance).mean()))
    by_abundance = np.array(curves["abundance_k_change"])
    assert curves["area_vs_abundance"] == pytest.approx(float((top - by_abundance).mean()))
    assert curves["abundance_area_between"] == pytest.approx(float((by_abundance - chance).mean()))
    assert curves["area_between"] > 1.0  # years
    assert top[0] > chance[0]
    assert curves["wins"] > 0.5


def test_occlusion_of_an_absent_asv_is_zero(tiny_run):
    data, checkpoint = tiny_run
    explanation = explain(
        checkpoint, data.table, metadata=data.metadata, method="occlusion", progress=False
    ).explanation
    matrix = explanation.matrix().toarray()  # [samples, features]
    dataset_order = {s: i for i, s in enumerate(explanation.feature_ids)}
    for i, sample in enumerate(explanation.sample_ids):
        row = data.counts[data.sample_ids.index(sample)]
        absent = [dataset_order[data.sequences[f]] for f in np.flatnonzero(row == 0)]
        assert np.all(matrix[i, absent] == 0.0)
        part = explanation.entries(i)
        assert len(explanation.features[part]) == int((row > 0).sum())  # one value per present ASV
    assert np.count_nonzero(matrix) > 0


def _full_run(folder: Path) -> tuple[Planted, Path]:
    """Every sample holds exactly 4 ASVs and the model reads 4: every batch fills all its slots."""
    rng = np.random.default_rng(3)
    sequences = random_sequences(rng, 12, 30, 40)
    counts = np.zeros((24, 12), dtype=np.int64)
    for row in counts:
        row[rng.choice(12, size=4, replace=False)] = rng.choice(
            np.arange(1, 300), size=4, replace=False
        )
    ids = [f"F{i:02d}" for i in range(24)]
    folder.mkdir(parents=True)
    with h5py.File(folder / "table.biom", "w") as handle:
        biom.Table(counts.T.astype(float), sequences, ids).to_hdf5(handle, "full")
    metadata = folder / "metadata.tsv"
    ages = rng.uniform(20, 70, size=24).round(1)
    metadata.write_text(
        "sample-id\tage\n" + "".join(f"{s}\t{a}\n" for s, a in zip(ids, ages, strict=True))
    )
    data = Planted(folder / "table.biom", metadata, ids, sequences, counts)
    return data, _train_tiny(folder / "run", data, max_asvs=4)


@pytest.mark.parametrize("layout", ["ragged", "full"])
def test_occlusion_is_the_prediction_without_the_asv_its_reads_kept(tiny_run, tmp_path, layout):
    """An independent route: a batch built from the table with the ASV's count removed but the
    sample's total unchanged gives the occluded prediction — also when every sample of a batch
    fills all its slots (where attention may skip the mask unless told otherwise)."""
    data, checkpoint = tiny_run if layout == "ragged" else _full_run(tmp_path / "full")
    loaded = aam_core.load_model(checkpoint, device="cpu")
    explained = load_explain_data(loaded, data.table, metadata=data.metadata)
    explanation = explain(
        loaded, data.table, metadata=data.metadata, method="occlusion", progress=False
    ).explanation
    dataset = explained.dataset
    for row in (3, 5):
        part = explanation.entries(row)
        feature = explanation.features[part][1]
        counts = dataset.counts.tolil()
        counts[row, feature] = 0
        without = attrs.evolve(dataset, counts=sparse.csr_matrix(counts), totals=dataset.totals)
        batch = collate(
            without,
            np.array([row]),
            max_asvs=loaded.config.data.max_asvs,
            categories=explained.codes,
            target=None,
        )
        with torch.no_grad():
            raw = loaded.model(batch).prediction.numpy()
        occluded = explained.target.decode(raw[:, 0], np.array([row]))[0]
        expected = explanation.prediction[row] - occluded
        assert explanation.values[part][1] == pytest.approx(expected, abs=1e-4)
    predicted = aam_core.predict(loaded, data.table, metadata=data.metadata)
    assert explanation.prediction == pytest.approx(
        predicted["predicted"].to_numpy(dtype=float), abs=1e-4
    )


def test_integrated_gradients_add_up_in_model_and_original_units(tiny_run):
    data, checkpoint = tiny_run
    e = explain(
        checkpoint,
        data.table,
        metadata=data.metadata,
        method="integrated-gradients",
        progress=False,
    ).explanation
    sums_model = np.add.reduceat(e.values_model, e.offsets[:-1])
    spread = np.abs(e.prediction_model - e.baseline_model)
    assert spread.max() > 1e-3  # the reference is not the prediction: the check has teeth
    assert sums_model == pytest.approx(
        e.prediction_model - e.baseline_model, abs=1e-3 * max(1.0, spread.max())
    )
    assert np.abs(e.residual()).max() < 1e-3 * max(1.0, np.abs(e.prediction - e.baseline).max())
    # z-score is affine: original units are model units times one constant, the transform's std.
    loaded = aam_core.load_model(checkpoint, device="cpu")
    std = (
        loaded.encoding.transform.inverse_transform(np.array([1.0]))[0]
        - loaded.encoding.transform.inverse_transform(np.array([0.0]))[0]
    )
    assert e.values == pytest.approx(e.values_model * std, rel=1e-6, abs=1e-9)


def test_log_transform_attributes_in_original_units(module_tiny_data, tmp_path):
    data = module_tiny_data()
    checkpoint = _train_tiny(tmp_path / "run", data, target_transform="log-zscore")
    ig = explain(checkpoint, data.table, method="integrated-gradients", progress=False).explanation
    assert np.abs(ig.residual()).max() < 1e-3 * max(1.0, np.abs(ig.prediction - ig.baseline).max())
    occlusion = explain(checkpoint, data.table, method="occlusion", progress=False).explanation
    loaded = aam_core.load_model(checkpoint, device="cpu")
    inverse = loaded.encoding.transform.inverse_transform
    sample = occlusion.entries(0)
    occluded_model = occlusion.prediction_model[0] - occlusion.values_model[sample]
    decoded = occlusion.prediction[0] - inverse(occluded_model.astype(np.float64))
    assert occlusion.values[sample] == pytest.approx(decoded, rel=1e-6, abs=1e-9)


def test_classifier_attributes_the_predicted_class_probability(module_tiny_data, tmp_path):
    data = module_tiny_data()
    checkpoint = _train_tiny(tmp_path / "run", data, metadata_column="site", classifier=True)
    ig = explain(
        checkpoint,
        data.table,
        metadata=data.metadata,
        method="integrated-gradients",
        progress=False,
    ).explanation
    assert ig.units == "probability of the predicted class"
    assert set(ig.predicted_class) <= {"cheek", "gum", "tongue"}
    assert np.all((ig.prediction >= 1 / 3 - 1e-6) & (ig.prediction <= 1.0))  # the top of 3 classes
    assert np.abs(ig.residual()).max() < 1e-3
    occlusion = explain(
        checkpoint, data.table, metadata=data.metadata, method="occlusion", progress=False
    ).explanation
    assert np.all(np.abs(occlusion.values) <= 1.0)
    assert list(occlusion.predicted_class) == list(ig.predicted_class)


def test_attention_weights_are_labelled_and_sum_to_one(tiny_run):
    data, checkpoint = tiny_run
    e = explain(
        checkpoint, data.table, metadata=data.metadata, method="attention", progress=False
    ).explanation
    assert e.kind == ATTENTION and "attention" in e.units
    assert np.all(e.values >= 0)
    assert np.add.reduceat(e.values, e.offsets[:-1]) == pytest.approx(np.ones(len(e)), abs=1e-5)
    assert np.all(np.isnan(e.baseline))


def test_perceiver_has_no_attention_but_occlusion_works(module_tiny_data, tmp_path):
    data = module_tiny_data()
    checkpoint = _train_tiny(
        tmp_path / "run", data, categorical_columns=["site"], fusion="perceiver"
    )
    with pytest.raises(ConfigError, match="perceiver"):
        explain(checkpoint, data.table, metadata=data.metadata, method="attention", progress=False)
    e = explain(
        checkpoint, data.table, metadata=data.metadata, method="occlusion", progress=False
    ).explanation
    assert np.all(np.isfinite(e.values)) and np.all(np.isfinite(e.baseline))


def test_unknown_method_lists_the_choices(tiny_run):
    data, checkpoint = tiny_run
    with pytest.raises(ConfigError, match="Available: attention, integrated-gradients, occlusion"):
        explain(checkpoint, data.table, method="shap", progress=False)


def test_explain_is_exported_and_stays_the_function():
    import aam_core.attribution.results  # noqa: F401 - importing the package must not shadow it

    assert aam_core.explain is explain
    assert "explain" in aam_core.__all__


def test_spearman_over_the_union_of_features():
    import pandas as pd

    first = pd.Series({"a": 3.0, "b": 2.0, "c": 1.0})
    assert spearman(first, pd.Series({"a": 5.0, "b": 4.0, "d": 0.5})) > 0.5
    assert spearman(first, pd.Series({"c": 5.0, "b": 4.0, "a": 3.0})) == pytest.approx(-1.0)
    assert np.isnan(spearman(first, pd.Series({"a": 1.0, "b": 1.0, "c": 1.0})))
