"""``--neighbours K``: reference samples, their similarity, and a model that reads them.

The planted data are repeated samples of the same subjects: each subject has ASVs of its own and
an age that nothing in the sequences predicts. Only recognising the subject helps, which is what
the nearest reference samples give the head.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from aam_core.api import load_model, predict, train
from aam_core.data.categories import CategoryEncoder
from aam_core.data.dataset import load_dataset
from aam_core.model.heads import TargetHead
from aam_core.neighbours import References, feature_width, neighbour_features, similarities
from aam_core.targets import TargetEncoding
from tests.conftest import random_sequences

SUBJECTS, PER_SUBJECT, PRIVATE, COMMON = 30, 3, 3, 10


class _Identity:
    """A transform that leaves the target as it is (model units = original units)."""

    uses_categories = False

    def transform(self, values, categories=None):  # noqa: ARG002 - the transform interface
        return np.asarray(values, dtype=float)


def _identity_encoding() -> TargetEncoding:
    return TargetEncoding(classes=None, transform=_Identity(), transform_categories=None)


@pytest.fixture
def small_sets(tmp_path, write_biom, write_tsv):
    """Four reference samples over ASVs a–e with known sets, targets and a site each."""
    seqs = dict(zip("abcdef", random_sequences(np.random.default_rng(3), 6), strict=True))
    sets = {"R0": "abc", "R1": "ab", "R2": "cde", "R3": "ae"}
    sites = {"R0": "gum", "R1": "gum", "R2": "tongue", "R3": "tongue"}
    ages = {"R0": 10.0, "R1": 20.0, "R2": 30.0, "R3": 40.0}
    ids = list(sets)
    counts = np.array([[5 if c in sets[s] else 0 for c in "abcde"] for s in ids])
    table = write_biom(tmp_path / "ref.biom", counts, [seqs[c] for c in "abcde"], ids)
    meta = write_tsv(tmp_path / "ref.tsv", ["sample-id", "age", "site"], [[s, ages[s], sites[s]] for s in ids])
    return seqs, table, meta


def _load(table, meta, **kw):
    from aam_core.config import DataConfig

    return load_dataset(DataConfig(table=str(table), metadata=str(meta), metadata_column="age", max_bp=40, **kw))


def test_similarity_is_the_jaccard_index_of_asv_sequences(small_sets, tmp_path, write_biom):
    """Matched by sequence, not by position or ID: a query table with its ASVs in another order
    and an ASV no reference has (f) gets |A∩B| / |A∪B| of the sets."""
    seqs, table, meta = small_sets
    ref = _load(table, meta)
    references = References.of(ref, np.arange(4), np.zeros((4, 0), dtype=np.int64), ref.target)
    query = write_biom(tmp_path / "q.biom", np.array([[1, 2, 3]]), [seqs["f"], seqs["b"], seqs["a"]], ["Q"])
    from aam_core.config import DataConfig

    q = load_dataset(DataConfig(table=str(query), max_bp=40), target_required=False)
    presence, sizes = references.presence_of(q)
    got = similarities(references, presence, sizes)[0]
    ids = list(ref.sample_ids)
    expected = {"R0": 2 / 4, "R1": 2 / 3, "R2": 0.0, "R3": 1 / 4}  # query {a, b, f}
    np.testing.assert_allclose(got, [expected[s] for s in ids])


def test_summaries_follow_categories_and_never_the_sample_itself(small_sets):
    """Branch 0 keeps to references of the sample's known site, branch 1 to all; a reference
    sample's own target never enters its summary; an unknown site restricts nothing."""
    _, table, meta = small_sets
    data = _load(table, meta, categorical_columns=["site"])
    encoder = CategoryEncoder.fit(data, ["site"])
    codes = encoder.encode(data)
    references = References.of(data, np.arange(4), codes, data.target)
    ids = list(data.sample_ids)
    exclude = np.arange(4)
    feats = neighbour_features(references, data, codes, 1, _identity_encoding(), exclude=exclude)
    age = dict(zip(ids, data.target, strict=True))
    by_id = {s: feats[i] for i, s in enumerate(ids)}
    # R0 {a,b,c}: its own set is excluded; within gum only R1 (J = 2/3); among all also R1
    assert by_id["R0"][0, 0] == by_id["R0"][0, 1] == age["R1"] and by_id["R0"][0, 2] == pytest.approx(2 / 3)
    # R3 {a,e}, tongue: within tongue only R2 {c,d,e} (J = 1/4); among all R1 {a,b} is as close
    # (J = 1/3) and wins
    assert by_id["R3"][0, 0] == age["R2"] and by_id["R3"][0, 2] == pytest.approx(1 / 4)
    assert by_id["R3"][1, 0] == age["R1"] and by_id["R3"][1, 2] == pytest.approx(1 / 3)
    for s in ids:  # never its own target, though its own similarity is 1
        assert by_id[s][1, 1] != age[s] and by_id[s][1, 2] < 1.0, s
    # the same samples with every category unknown: both branches agree, over all references
    hidden = neighbour_features(references, data, np.zeros_like(codes), 1, _identity_encoding(), exclude=exclude)
    np.testing.assert_array_equal(hidden[:, 0], hidden[:, 1])
    np.testing.assert_array_equal(hidden[:, 1], feats[:, 1])


def test_k_neighbours_are_weighted_by_similarity_and_stored_losslessly(small_sets):
    _, table, meta = small_sets
    data = _load(table, meta)
    codes = np.zeros((4, 0), dtype=np.int64)
    references = References.of(data, np.arange(4), codes, data.target)
    feats = neighbour_features(references, data, codes, 2, _identity_encoding(), exclude=np.arange(4))
    ids = list(data.sample_ids)
    r0 = feats[ids.index("R0"), 1]  # {a,b,c}: R1 {a,b} (2/3, age 20), R3 {a,e} (1/4, age 40)
    assert r0[0] == pytest.approx((2 / 3 * 20 + 1 / 4 * 40) / (2 / 3 + 1 / 4)) and r0[1] == 20
    assert r0[2] == pytest.approx(2 / 3) and r0[3] == pytest.approx((2 / 3 + 1 / 4) / 2)
    # disagreement: weighted mean absolute deviation from the weighted mean, in units of the
    # reference ages' standard deviation (ages 10, 20, 30, 40)
    deviation = (2 / 3 * abs(20 - r0[0]) + 1 / 4 * abs(40 - r0[0])) / (2 / 3 + 1 / 4)
    assert r0[4] == pytest.approx(deviation / np.std([10, 20, 30, 40]), rel=1e-5)
    again = References.from_state(references.state_dict())
    np.testing.assert_array_equal(again.presence.toarray(), references.presence.toarray())
    np.testing.assert_array_equal(again.sequences, references.sequences)
    np.testing.assert_array_equal(again.target, references.target)
    np.testing.assert_array_equal(
        neighbour_features(again, data, codes, 2, _identity_encoding()), neighbour_features(references, data, codes, 2, _identity_encoding())
    )


def test_a_sample_with_no_candidate_reads_the_reference_mean(small_sets):
    """One reference sample, excluded from its own summary, leaves it no candidate: its targets
    read the references' mean, its similarities 0 and its disagreement 1 (no agreement to trust),
    never NaN."""
    _, table, meta = small_sets
    data = _load(table, meta)
    codes = np.zeros((4, 0), dtype=np.int64)
    references = References.of(data, np.array([2]), codes, data.target)
    exclude = np.array([-1, -1, 0, -1])
    feats = neighbour_features(references, data, codes, 3, _identity_encoding(), exclude=exclude)
    assert np.isfinite(feats).all()
    np.testing.assert_array_equal(feats[2, :, :2], data.target[2])
    np.testing.assert_array_equal(feats[2, :, 2:4], 0.0)
    np.testing.assert_array_equal(feats[2, :, 4], 1.0)
    # the others' only candidate is the one reference: one target, so no disagreement at all
    np.testing.assert_array_equal(feats[[0, 1, 3], :, 4], 0.0)


def test_a_classifier_reads_class_shares(small_sets):
    _, table, meta = small_sets
    data = _load(table, meta)
    labels = np.array([0, 0, 1, 1])  # R0, R1 young; R2, R3 old
    codes = np.zeros((4, 0), dtype=np.int64)
    references = References.of(data, np.arange(4), codes, labels)
    encoding = TargetEncoding(classes=["young", "old"], transform=None, transform_categories=None)
    feats = neighbour_features(references, data, codes, 3, encoding, exclude=np.arange(4))
    # two class shares, the nearest one-hot, top and mean similarity, disagreement
    assert feats.shape == (4, 2, 7)
    np.testing.assert_allclose(feats[:, 1, :2].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(feats[:, 1, 2:4].sum(axis=1), 1.0)
    r1 = feats[list(data.sample_ids).index("R1"), 1]  # {a,b}: R0 (2/3, young), R3 (1/3, old), R2 (0)
    assert r1[0] == pytest.approx((2 / 3) / (2 / 3 + 1 / 3 + 1e-6), rel=1e-4)
    assert list(r1[2:4]) == [1.0, 0.0]  # the nearest, R0, is young
    assert r1[6] == pytest.approx(1 - r1[0], rel=1e-5)  # the weight share outside the top class


# -- the head's gate ------------------------------------------------------------------------------
def _head(classifier: bool, bias: float) -> TargetHead:
    out_dim = 3 if classifier else 1
    head = TargetHead(8, out_dim, extra=feature_width(out_dim), classifier=classifier).eval()
    torch.nn.init.zeros_(head.gate.weight)
    torch.nn.init.constant_(head.gate.bias, bias)
    return head


@pytest.mark.parametrize("classifier", [False, True])
def test_the_gate_blends_the_head_with_the_references_target(classifier):
    """Open, the head gives the references' weighted target exactly (a classifier: their class
    shares as its probabilities, a class none of them has at 0); shut, its own output (for a
    classifier the same probabilities); half open, the mean of the two."""
    torch.manual_seed(0)
    pooled = torch.randn(5, 8)
    out_dim = 3 if classifier else 1
    theirs = torch.tensor([[0.5, 0.5, 0.0]] * 5) if classifier else torch.randn(5, 1)
    extra = torch.cat([theirs, torch.rand(5, feature_width(out_dim) - out_dim)], dim=1)
    shut, half, open_ = (_head(classifier, bias) for bias in (-1.0e4, 0.0, 1.0e4))
    for head in (half, open_):
        head.load_state_dict({**shut.state_dict(), "gate.bias": head.gate.bias.detach()})
    own = shut.net[4](shut.net[3](shut.net[2](torch.cat([shut.net[0](pooled), extra], dim=1))))
    if classifier:
        probabilities = [head(pooled, extra).softmax(dim=1) for head in (shut, half, open_)]
        torch.testing.assert_close(probabilities[0], own.softmax(dim=1))
        torch.testing.assert_close(probabilities[2], theirs, atol=1e-6, rtol=0)
        torch.testing.assert_close(probabilities[1], (own.softmax(dim=1) + theirs) / 2)
    else:
        torch.testing.assert_close(shut(pooled, extra), own)
        torch.testing.assert_close(open_(pooled, extra), theirs)
        torch.testing.assert_close(half(pooled, extra), (own + theirs) / 2)


def test_an_open_gate_hands_over_the_target_exactly_under_bfloat16():
    """Mixed precision runs the head in bfloat16 (three significant digits); the references'
    target it hands over must not pass through that."""
    head = _head(False, 1.0e4).to(torch.bfloat16)
    theirs = torch.tensor([[1.2345678], [-0.9876543]])
    extra = torch.cat([theirs, torch.rand(2, feature_width(1) - 1)], dim=1)
    out = head(torch.randn(2, 8, dtype=torch.bfloat16), extra)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, theirs, rtol=0, atol=0)


def test_the_gate_learns_on_top_of_the_heads_own_output():
    """In training the blend sees the head's own output detached (the loss on the blend moves
    only the gate and what feeds it; the own output answers to a loss of its own, so an open gate
    cannot starve it); in evaluation both paths carry gradient, for attributions."""
    torch.manual_seed(0)
    pooled, extra = torch.randn(4, 8), torch.randn(4, feature_width(1))
    for training, reaches_own in ((True, False), (False, True)):
        head = TargetHead(8, 1, extra=feature_width(1)).train(training)
        prediction, own = head.parts(pooled, extra)
        prediction.sum().backward(retain_graph=True)
        assert (head.net[4].weight.grad is not None) is reaches_own
        assert head.gate.weight.grad is not None and head.gate.weight.grad.abs().sum() > 0
        head.zero_grad(set_to_none=True)
        own.sum().backward()
        assert head.net[4].weight.grad.abs().sum() > 0 and head.gate.weight.grad is None


# -- a model that reads them ----------------------------------------------------------------------
@pytest.fixture
def subjects(tmp_path, write_biom, write_tsv):
    """Repeated samples of 30 subjects: 3 ASVs of their own, 4 of 10 shared ones, an age drawn at
    random; 2 samples of each subject train, 1 validates."""
    rng = np.random.default_rng(11)
    seqs = random_sequences(rng, SUBJECTS * PRIVATE + COMMON, 28, 36)
    ages = rng.uniform(20, 70, SUBJECTS).round(1)
    ids, rows, meta = [], [], []
    for subject in range(SUBJECTS):
        for rep in range(PER_SUBJECT):
            row = np.zeros(len(seqs), dtype=np.int64)
            own = np.arange(subject * PRIVATE, (subject + 1) * PRIVATE)
            row[own] = rng.integers(50, 300, PRIVATE)
            shared = SUBJECTS * PRIVATE + rng.choice(COMMON, 4, replace=False)
            row[shared] = rng.integers(50, 300, 4)
            sid = f"P{subject:02d}.{rep}"
            ids.append(sid)
            rows.append(row)
            meta.append([sid, ages[subject]])
    table = write_biom(tmp_path / "subjects.biom", np.array(rows), seqs, ids)
    metadata = write_tsv(tmp_path / "subjects.tsv", ["sample-id", "age"], meta)
    train_ids = [s for s in ids if int(s.split(".")[1]) < 2]
    val_ids = [s for s in ids if int(s.split(".")[1]) >= 2]
    return table, metadata, train_ids, val_ids, dict(zip(ids, np.repeat(ages, PER_SUBJECT), strict=True))


def _fit(subjects, out, tiny_model, **extra):
    table, metadata, train_ids, val_ids, _ = subjects
    options = {**tiny_model, "epochs": 20, "lr": 3e-3, "max_bp": 40, **extra}
    return train(
        table=table,
        metadata=metadata,
        metadata_column="age",
        output_dir=out,
        train_samples=train_ids,
        val_samples=val_ids,
        **options,
    )


def test_the_head_uses_its_neighbours_where_the_sequences_say_nothing(subjects, tmp_path, tiny_model):
    """The subjects' ages are unrelated to their sequences, and two samples of a subject are too
    few for the network to learn 30 of them in 20 epochs (it stays near the mean predictor): with
    --neighbours 2 the validation MAE is a fraction of the mean predictor's and of the same model
    without them."""
    *_, age = subjects
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with_nb = _fit(subjects, tmp_path / "nb", tiny_model, neighbours=2)
        without = _fit(subjects, tmp_path / "plain", tiny_model)
    val = with_nb.predictions
    train_mean = np.mean([age[s] for s in subjects[2]])
    mean_mae = np.abs(val["actual"] - train_mean).mean()
    mae = with_nb.metrics["val"]["mae"]
    assert mae < 0.3 * mean_mae, (mae, mean_mae)
    assert mae < 0.5 * without.metrics["val"]["mae"], (mae, without.metrics["val"]["mae"])


def test_predict_compares_with_the_stored_reference_samples(subjects, tmp_path, tiny_model, write_biom):
    """``best.pt`` holds the reference samples: predicting the validation samples again gives
    val_predictions.tsv, also from a table with the ASVs in another order; a checkpoint without
    them is refused clearly."""
    table, metadata, _, val_ids, _ = subjects
    result = _fit(subjects, tmp_path / "nb", tiny_model, neighbours=2, epochs=2)
    best = tmp_path / "nb" / "checkpoints" / "best.pt"
    loaded = load_model(best)
    assert loaded.references is not None and len(loaded.references) == len(subjects[2])
    expected = result.predictions.set_index("sample_id")["predicted"]
    again = predict(loaded, table, metadata=metadata).set_index("sample_id")["predicted"]
    np.testing.assert_allclose(again.loc[val_ids], expected.loc[val_ids], rtol=1e-5, atol=1e-5)

    import biom

    original = biom.load_table(str(table))
    order = list(original.ids(axis="observation"))[::-1]
    shuffled = write_biom(
        tmp_path / "reordered.biom",
        original.sort_order(order, axis="observation").matrix_data.toarray().T,
        order,
        list(original.ids()),
    )
    moved = predict(loaded, shuffled, metadata=metadata).set_index("sample_id")["predicted"]
    np.testing.assert_allclose(moved.loc[val_ids], expected.loc[val_ids], rtol=1e-5, atol=1e-5)

    # explain holds each sample's neighbours at its own: its prediction is predict's
    from aam_core.attribution.api import explain

    shown = explain(loaded, table, metadata=metadata, method="occlusion", samples=val_ids[:4], progress=False)
    np.testing.assert_allclose(shown.explanation.prediction, expected.loc[val_ids[:4]], rtol=1e-5, atol=1e-5)

    payload = torch.load(best, map_location="cpu", weights_only=True)
    payload["references"] = None
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    from aam_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="reference samples"):
        load_model(broken)


def test_format_5_neighbour_models_migrate_and_predict_as_they_did(subjects, tmp_path, tiny_model, write_tsv):
    """A format-5 head read no disagreement and had no gate: migrated, each head (the main and
    the unknown-category one) ignores the one and keeps the other shut, so it predicts what its
    own layers give (the model with its gates shut and the new input's weights 0); its last.pt
    keeps no state to resume."""
    table, _, train_ids, val_ids, age = subjects
    rows = [[s, a, "odd" if int(s[1:3]) % 2 else "even"] for s, a in age.items()]
    metadata = write_tsv(tmp_path / "sites.tsv", ["sample-id", "age", "site"], rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train(
            table=table, metadata=metadata, metadata_column="age", categorical_columns="site", neighbours=2,
            train_samples=train_ids, val_samples=val_ids, output_dir=tmp_path / "nb", **{**tiny_model, "epochs": 2, "max_bp": 40},
        )  # fmt: skip
    now = torch.load(tmp_path / "nb" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    old, shut = dict(now, format=5), dict(now)
    old["model_state"], shut["model_state"] = dict(now["model_state"]), dict(now["model_state"])
    for head in ("target_head", "unknown_head"):
        weight = now["model_state"][f"{head}.net.2.weight"]
        old["model_state"][f"{head}.net.2.weight"] = weight[:, :-1].clone()
        del old["model_state"][f"{head}.gate.weight"], old["model_state"][f"{head}.gate.bias"]
        shut["model_state"][f"{head}.net.2.weight"] = torch.cat([weight[:, :-1], weight.new_zeros(len(weight), 1)], dim=1)
        shut["model_state"][f"{head}.gate.weight"] = torch.zeros_like(now["model_state"][f"{head}.gate.weight"])
        shut["model_state"][f"{head}.gate.bias"] = torch.full_like(now["model_state"][f"{head}.gate.bias"], -1.0e4)
    for name, payload in (("old.pt", old), ("shut.pt", shut)):
        torch.save(payload, tmp_path / name)
    then = predict(load_model(tmp_path / "old.pt"), table, metadata=metadata).set_index("sample_id")["predicted"]
    expected = predict(load_model(tmp_path / "shut.pt"), table, metadata=metadata).set_index("sample_id")["predicted"]
    gated = predict(load_model(tmp_path / "nb" / "checkpoints" / "last.pt"), table, metadata=metadata)
    np.testing.assert_allclose(then.loc[val_ids], expected.loc[val_ids], rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():  # without metadata: the unknown-category head
        warnings.simplefilter("ignore", UserWarning)
        blind = [predict(load_model(tmp_path / n), table)["predicted"].to_numpy() for n in ("old.pt", "shut.pt")]
    np.testing.assert_allclose(blind[0], blind[1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(then.loc[val_ids], gated.set_index("sample_id")["predicted"].loc[val_ids])
    from aam_core.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "old.pt")["training_state"] is None


def test_cli_trains_and_predicts_with_neighbours(subjects, tmp_path, run_cli, as_flags, tiny_model, caplog):
    caplog.set_level(logging.INFO, logger="aam")
    table, metadata, train_ids, val_ids, _ = subjects
    lists = tmp_path / "train.txt", tmp_path / "val.txt"
    for path, ids in zip(lists, (train_ids, val_ids), strict=True):
        path.write_text("\n".join(ids) + "\n")
    out = tmp_path / "cli"
    flags = as_flags({**tiny_model, "max_bp": 40, "neighbours": 2})
    done = run_cli(
        "train", "--table", str(table), "--metadata", str(metadata), "--metadata-column", "age",
        "--train-samples", str(lists[0]), "--val-samples", str(lists[1]), "--output-dir", str(out), *flags,
    )
    assert done.code == 0, done.err
    assert "Nearest reference samples: each sample compared with 60 training samples (K = 2)" in caplog.text
    written = tmp_path / "pred.tsv"
    done = run_cli("predict", "--model", str(out / "checkpoints" / "best.pt"), "--table", str(table), "--output", str(written))
    assert done.code == 0, done.err
    frame = pd.read_csv(written, sep="\t")
    assert len(frame) == SUBJECTS * PER_SUBJECT and frame["predicted"].notna().all()


def test_a_classifier_trains_and_predicts_with_class_shares(subjects, tmp_path, tiny_model, write_tsv):
    """For a classifier the head reads class shares and the nearest class (2 · classes + 3
    inputs besides the pooled vector); predict reproduces the validation probabilities."""
    table, _, train_ids, val_ids, age = subjects
    labels = write_tsv(tmp_path / "labels.tsv", ["sample-id", "group"], [[s, "old" if a > 45 else "young"] for s, a in age.items()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = train(
            table=table, metadata=labels, metadata_column="group", classifier=True, neighbours=2,
            train_samples=train_ids, val_samples=val_ids, output_dir=tmp_path / "cls", **{**tiny_model, "epochs": 2, "max_bp": 40},
        )  # fmt: skip
    head = result.model.model.target_head.net[2]
    assert head.in_features == tiny_model["embedding_dim"] + 2 * 2 + 3
    again = predict(tmp_path / "cls" / "checkpoints" / "best.pt", table, metadata=labels).set_index("sample_id")
    expected = result.predictions.set_index("sample_id")
    np.testing.assert_allclose(again.loc[val_ids, ["old", "young"]], expected.loc[val_ids, ["old", "young"]], rtol=1e-5, atol=1e-6)
