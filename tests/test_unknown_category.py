"""Category dropout trains the reserved 'unknown' category: a model trained with a site column
predicts samples whose site is missing about as well as a model that never had the column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aam_core import predict, train
from aam_core.training.metrics import regression_metrics

SITES = ("A", "B", "C")
OFFSET = {"A": 0.0, "B": 30.0, "C": 60.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The target is 20 + 60 × the share of ASV 0 plus a large per-site offset; each site has
    its own ASVs (as studies do), so the site can also be read from the composition."""
    from conftest import _write_biom, _write_tsv, random_sequences

    folder = tmp_path_factory.mktemp("offsets")
    rng = np.random.default_rng(3)
    n, f = 150, 25
    sequences = random_sequences(rng, f, low=30, high=40)
    counts = np.zeros((n, f), dtype=np.int64)
    sites = [SITES[i % 3] for i in range(n)]
    for row in range(n):
        block = 1 + 8 * SITES.index(sites[row]) + np.arange(8)
        others = rng.choice(block, size=6, replace=False)
        counts[row, others] = rng.integers(20, 200, size=6)
        counts[row, 0] = rng.integers(0, 600)
    share = counts[:, 0] / counts.sum(axis=1)
    target = 20.0 + 60.0 * share + np.array([OFFSET[s] for s in sites])
    ids = [f"Q{i:03d}" for i in range(n)]
    table = _write_biom(folder / "table.biom", counts, sequences, ids)
    metadata = _write_tsv(folder / "metadata.tsv", ["sample-id", "trait", "site"], [[s, f"{t:.3f}", c] for s, t, c in zip(ids, target, sites, strict=True)])
    return table, metadata, ids


def _train(data, out, epochs=20, **options):
    table, metadata, ids = data
    return train(
        table=table, metadata=metadata, metadata_column="trait", output_dir=out,
        train_samples=ids[:100], val_samples=ids[100:125], embedding_dim=32, attention_heads=2,
        attention_layers=1, asv_layers=1, max_bp=40, epochs=epochs, batch_size=16, lr=3e-3, dropout=0.0,
        count_prediction=False, target_loss="mse", seed=1, **options,
    )  # fmt: skip


def _hidden_mae(result, data) -> float:
    table, _, ids = data
    with pytest.warns(UserWarning, match="No --metadata"):
        frame = predict(result.model, table).set_index("sample_id").loc[ids[125:]]
    truth = predict(result.model, table, metadata=data[1]).set_index("sample_id").loc[ids[125:], "actual"]
    return regression_metrics(truth, frame["predicted"])["mae"]


def test_the_unknown_branch_predicts_hidden_categories_like_a_model_without_them(data, tmp_path):
    """At the defaults (dropout 0.5, a head of its own); 40 epochs, as the separate head needs
    more than 20 to converge on these 100 samples."""
    without = _train(data, tmp_path / "without", epochs=40, categorical_columns=[])
    table, metadata, ids = data
    plain = predict(without.model, table, metadata=metadata).set_index("sample_id").loc[ids[125:]]
    baseline = regression_metrics(plain["actual"], plain["predicted"])["mae"]

    dropout = _train(data, tmp_path / "dropout", epochs=40, categorical_columns=["site"], fusion="gmu")
    none = _train(data, tmp_path / "none", epochs=40, categorical_columns=["site"], fusion="gmu", category_dropout=0.0)
    assert any("train/unknown_category_loss" in e for e in dropout.metrics["history"])
    assert not any("train/unknown_category_loss" in e for e in none.metrics["history"])
    hidden = _hidden_mae(dropout, data)
    assert hidden < 1.25 * baseline, (hidden, baseline)
    # Same seed, same initialisation: without category dropout the unknown row only decays; with
    # it, the row is trained.
    trained = dropout.model.model.categorical.tables[0].weight[0]
    untrained = none.model.model.categorical.tables[0].weight[0]
    assert (trained - untrained).norm() > 0.5 * untrained.norm()


def test_the_unknown_branch_reuses_the_encoding(data, tmp_path):
    """Both predictions come from one forward pass; the unknown one equals a pass with every
    category set to 'unknown'."""
    import attrs

    from aam_core.data import load_dataset
    from aam_core.data.batching import collate

    result = _train(data, tmp_path / "run", categorical_columns=["site"], fusion="gmu", category_dropout=0.25)
    model = result.model.model.eval()
    dataset = load_dataset(result.config.data)
    codes = result.model.encoder.encode(dataset)
    batch = collate(dataset, np.arange(8), max_asvs=64, categories=codes, target=None)
    with torch.no_grad():
        both = model(attrs.evolve(batch, unknown_branch=True))
        hidden = model(attrs.evolve(batch, categories=torch.zeros_like(batch.categories)))
    torch.testing.assert_close(both.unknown_prediction, hidden.prediction)
    assert not torch.allclose(both.prediction, both.unknown_prediction)


@pytest.mark.parametrize("own_head", [True, False])
def test_the_unknown_loss_trains_its_own_head_and_leaves_the_main_head_alone(data, tmp_path, own_head):
    """With ``unknown_head`` (the default) samples with every category unknown are predicted by a
    head of their own, so their loss never bends the head that reads the categories; without it
    they share the main head."""
    import attrs

    from aam_core.data import load_dataset
    from aam_core.data.batching import collate

    result = _train(data, tmp_path / "run", categorical_columns=["site"], fusion="gmu", category_dropout=0.25, epochs=1, unknown_head=own_head)
    model = result.model.model.train()
    assert (model.unknown_head is not None) is own_head
    dataset = load_dataset(result.config.data)
    codes = result.model.encoder.encode(dataset)
    batch = collate(dataset, np.arange(8), max_asvs=64, categories=codes, target=None)
    out = model(attrs.evolve(batch, unknown_branch=True))
    out.unknown_prediction.sum().backward()
    main = sum(float(p.grad.abs().sum()) for p in model.target_head.parameters() if p.grad is not None)
    assert (main == 0.0) is own_head
    if own_head:
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.unknown_head.parameters())
    model.eval()
    with torch.no_grad():  # a batch mixing known and unknown samples: each row gets its own head
        mixed = batch.categories.clone()
        mixed[:4] = 0
        both = model(attrs.evolve(batch, categories=mixed)).prediction
        known = model(batch).prediction
        hidden = model(attrs.evolve(batch, categories=torch.zeros_like(batch.categories))).prediction
    torch.testing.assert_close(both[:4], hidden[:4])
    torch.testing.assert_close(both[4:], known[4:])


def test_the_best_epoch_weighs_the_unknown_head_as_training_does(data, tmp_path):
    """With an unknown-category head the best epoch is chosen on ``(1 - p)·MAE + p·MAE with the
    categories hidden`` (p: category dropout), so ``best.pt`` is not an epoch at which only the
    head that reads the categories has learnt; the hidden MAE it logs is what ``aam predict``
    without metadata gives, and ``metrics.json`` reports it for the best model."""
    table, metadata, ids = data
    result = _train(data, tmp_path / "run", epochs=8, categorical_columns=["site"], fusion="gmu", category_dropout=0.3)
    history = result.metrics["history"]
    mix = [0.7 * e["val/mae"] + 0.3 * e["val/unknown_mae"] for e in history]
    assert result.metrics["best_epoch"] == history[int(np.argmin(mix))]["epoch"]
    assert "categories hidden" in result.metrics["best_metric"]

    val = ids[100:125]
    with pytest.warns(UserWarning, match="No --metadata"):
        hidden = predict(result.model, table).set_index("sample_id").loc[val]
    truth = predict(result.model, table, metadata=metadata).set_index("sample_id").loc[val]
    expected = regression_metrics(truth["actual"], hidden["predicted"])["mae"]
    best = history[result.metrics["best_epoch"] - 1]
    assert best["val/unknown_mae"] == pytest.approx(expected, rel=1e-4)
    assert result.metrics["val_categories_hidden"]["mae"] == pytest.approx(expected, rel=1e-4)
    assert result.metrics["val"]["mae"] == pytest.approx(regression_metrics(truth["actual"], truth["predicted"])["mae"], rel=1e-4)
    assert expected != pytest.approx(result.metrics["val"]["mae"], rel=1e-3)  # two heads, two numbers


def test_without_an_unknown_head_the_best_epoch_is_the_plain_validation_metric(data, tmp_path):
    result = _train(data, tmp_path / "run", epochs=4, categorical_columns=["site"], fusion="gmu", category_dropout=0.3, unknown_head=False)
    history = result.metrics["history"]
    assert not any("val/unknown_mae" in e for e in history)
    assert "val_categories_hidden" not in result.metrics
    assert result.metrics["best_epoch"] == history[int(np.argmin([e["val/mae"] for e in history]))]["epoch"]


@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_category_prediction_makes_the_unknown_branch_tell_the_sites_apart(data, tmp_path, weight):
    """``--category-prediction-weight`` adds heads that read each categorical column from the
    sample vector the unknown-category head sees; trained, they name the held-out samples' sites
    (each site has its own ASVs here), and the loss is logged. At weight 0 none is built."""
    import attrs

    from aam_core.data import load_dataset
    from aam_core.data.batching import collate

    result = _train(data, tmp_path / "run", categorical_columns=["site"], fusion="gmu", category_prediction_weight=weight)
    model = result.model.model.eval()
    logged = [e["train/category_prediction_loss"] for e in result.metrics["history"] if "train/category_prediction_loss" in e]
    if not weight:
        assert model.category_heads is None and not logged
        return
    assert len(logged) == len(result.metrics["history"]) and logged[-1] < 0.5 * logged[0]
    dataset = load_dataset(result.config.data)
    codes = result.model.encoder.encode(dataset)
    held_out = np.arange(100, 150)
    batch = collate(dataset, held_out, max_asvs=64, categories=codes, target=None)
    with torch.no_grad():
        out = model(attrs.evolve(batch, unknown_branch=True))
    named = out.category_logits[0].argmax(dim=1).numpy()
    assert (named == codes[held_out, 0]).mean() >= 0.9


def test_the_category_loss_scores_known_codes_only():
    from torch.nn import functional as F

    from aam_core.training.losses import category_loss

    torch.manual_seed(0)
    logits = [torch.randn(6, 4), torch.randn(6, 3)]
    codes = torch.tensor([[1, 0], [2, 0], [0, 0], [3, 0], [1, 0], [0, 0]])
    known = codes[:, 0] != 0
    expected = F.cross_entropy(logits[0][known], codes[known, 0])  # column 2: nothing known, adds 0
    torch.testing.assert_close(category_loss(logits, codes), expected)
    assert float(category_loss(logits, torch.zeros_like(codes))) == 0.0


def test_zscore_category_gives_the_unknown_branch_a_target_it_can_know(data, tmp_path):
    """With ``zscore-category`` by site, the model with the site learns each site's z-scores; the
    unknown branch, which never sees the site, learns the target z-scored with the global
    statistics, and is decoded with them: a sample predicted without metadata, or with a site
    never seen in training, gets its site's level from the composition. (Taught per-site
    z-scores, the branch would have to guess the site's offset it is never given.)"""
    import warnings

    import pandas as pd

    from aam_plugins.transforms.zscore_category import UnseenCategoryWarning

    table, metadata, ids = data
    result = _train(
        data, tmp_path / "run", epochs=40, categorical_columns=["site"], fusion="gmu",
        target_transform="zscore-category", normalize_by="site",
    )  # fmt: skip
    held_out = ids[125:]
    truth = predict(result.model, table, metadata=metadata).set_index("sample_id").loc[held_out, "actual"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hidden = predict(result.model, table).set_index("sample_id").loc[held_out, "predicted"]
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "No --metadata" in messages[0], messages  # one warning, not two
    assert not any(issubclass(w.category, UnseenCategoryWarning) for w in caught)

    mean_mae = float(np.abs(truth - truth.mean()).mean())  # about 20: the sites' offsets
    hidden_mae = regression_metrics(truth, hidden)["mae"]
    assert hidden_mae < 0.4 * mean_mae, (hidden_mae, mean_mae)

    # a site never seen in training takes the same branch and the same decoding
    renamed = pd.read_csv(metadata, sep="\t", dtype=str)
    renamed["site"] = "D"
    renamed.to_csv(tmp_path / "unseen.tsv", sep="\t", index=False)
    with pytest.warns(UserWarning, match="unseen in training"):
        unseen = predict(result.model, table, metadata=tmp_path / "unseen.tsv").set_index("sample_id").loc[held_out, "predicted"]
    np.testing.assert_allclose(unseen.to_numpy(float), hidden.to_numpy(float), rtol=1e-5)

    # validation scores the branch the same way
    val = ids[100:125]
    with pytest.warns(UserWarning, match="No --metadata"):
        val_hidden = predict(result.model, table).set_index("sample_id").loc[val, "predicted"]
    val_truth = predict(result.model, table, metadata=metadata).set_index("sample_id").loc[val, "actual"]
    expected = regression_metrics(val_truth, val_hidden)["mae"]
    assert result.metrics["val_categories_hidden"]["mae"] == pytest.approx(expected, rel=1e-4)
