"""Batches hold each ASV once; batching and padding never change what the model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aam_core.config import ModelConfig
from aam_core.data import load_dataset
from aam_core.data.batching import S_BUCKET, U_BUCKET, collate, iter_batches
from aam_core.model.aam import AAMModel, Heads


@pytest.fixture
def dataset(tiny_data):
    return load_dataset(tiny_data.config())


def no_categories(ds) -> np.ndarray:
    return np.zeros((len(ds), 0), dtype=np.int64)


def make_batch(ds, rows, max_asvs: int = 256, bucket: bool = False):
    return collate(
        ds,
        np.asarray(rows, dtype=np.int64),
        max_asvs=max_asvs,
        categories=no_categories(ds),
        target=ds.target,
        bucket=bucket,
    )


def sample_asvs(ds, row: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature indices and counts of one sample, in feature order."""
    start, end = ds.counts.indptr[row], ds.counts.indptr[row + 1]
    return ds.counts.indices[start:end], ds.counts.data[start:end]


def padded(tokens: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=np.int64)
    real = tokens[tokens != 0][:width]
    out[: len(real)] = real
    return out


ROWS = [0, 3, 4, 9, 17, 21, 28]


# -- layout ---------------------------------------------------------------------------------------
def test_unique_asvs_are_held_once(dataset):
    batch = make_batch(dataset, ROWS)
    rows = {tuple(r) for r in batch.asv_tokens.tolist()}
    assert len(rows) == batch.asv_tokens.shape[0]
    used = torch.unique(batch.asv_index[batch.mask])
    assert len(used) == batch.asv_tokens.shape[0]  # every held ASV is used by some sample
    n_slots = sum(len(sample_asvs(dataset, r)[0]) for r in ROWS)
    assert batch.asv_tokens.shape[0] <= n_slots


def test_index_points_at_each_samples_asvs(dataset):
    batch = make_batch(dataset, ROWS)
    width = batch.asv_tokens.shape[1]
    for b, row in enumerate(ROWS):
        feats, counts = sample_asvs(dataset, row)
        n = len(feats)
        assert batch.mask[b, :n].all() and not batch.mask[b, n:].any()
        np.testing.assert_array_equal(batch.counts[b, :n].numpy(), counts)
        assert (batch.counts[b, n:] == 0).all() and (batch.asv_index[b, n:] == 0).all()
        for s, feat in enumerate(feats):
            got = batch.asv_tokens[batch.asv_index[b, s]].numpy()
            np.testing.assert_array_equal(got, padded(dataset.tokens[feat], width))
    assert batch.sample_ids == [dataset.sample_ids[r] for r in ROWS]
    np.testing.assert_allclose(batch.target.numpy(), dataset.target[ROWS])


def test_max_asvs_keeps_the_most_abundant(dataset):
    cap = 3
    batch = make_batch(dataset, ROWS, max_asvs=cap)
    assert batch.mask.shape[1] == cap
    for b, row in enumerate(ROWS):
        feats, counts = sample_asvs(dataset, row)
        top = np.argsort(-counts, kind="stable")[:cap]
        kept = int(batch.mask[b].sum())
        assert kept == min(cap, len(feats))
        assert sorted(batch.counts[b, :kept].tolist()) == sorted(counts[top].tolist())
        held = {tuple(batch.asv_tokens[i].tolist()) for i in batch.asv_index[b, :kept]}
        width = batch.asv_tokens.shape[1]
        assert held == {tuple(padded(dataset.tokens[f], width)) for f in feats[top]}


def test_shapes_are_this_batchs_maxima(dataset):
    for rows in (ROWS, [1, 2], [5]):
        batch = make_batch(dataset, rows)
        feats = [sample_asvs(dataset, r)[0] for r in rows]
        assert batch.mask.shape == (len(rows), max(len(f) for f in feats))
        lengths = [len(dataset.sequences[f]) for fs in feats for f in fs]
        assert batch.asv_tokens.shape[1] == max(lengths)
        assert batch.asv_tokens.shape[0] == len(np.unique(np.concatenate(feats)))


def test_bucket_rounds_up_with_padding_only(dataset):
    exact = make_batch(dataset, ROWS)
    bucketed = make_batch(dataset, ROWS, bucket=True)
    s, u = exact.mask.shape[1], exact.asv_tokens.shape[0]
    assert bucketed.mask.shape[1] % S_BUCKET == 0 and bucketed.mask.shape[1] >= s
    assert bucketed.asv_tokens.shape[0] % U_BUCKET == 0 and bucketed.asv_tokens.shape[0] >= u
    assert bucketed.mask.shape[1] - s < S_BUCKET and bucketed.asv_tokens.shape[0] - u < U_BUCKET
    assert torch.equal(bucketed.asv_tokens[:u], exact.asv_tokens)
    assert (bucketed.asv_tokens[u:] == 0).all()
    assert torch.equal(bucketed.mask[:, :s], exact.mask) and not bucketed.mask[:, s:].any()
    assert (bucketed.counts[:, s:] == 0).all() and (bucketed.asv_index[:, s:] == 0).all()
    assert torch.equal(bucketed.asv_index[:, :s], exact.asv_index)


def test_iter_batches_covers_every_row_once(dataset):
    rows = np.arange(len(dataset))
    seen = [
        r
        for batch in iter_batches(
            dataset,
            rows,
            8,
            max_asvs=256,
            categories=no_categories(dataset),
            target=dataset.target,
            shuffle=True,
            generator=np.random.default_rng(0),
        )
        for r in batch.rows
    ]
    assert sorted(seen) == list(rows)


# -- batching never changes the model's output -------------------------------------------------
def tiny_model(max_bp: int) -> AAMModel:
    torch.manual_seed(0)
    config = ModelConfig(
        embedding_dim=16, attention_heads=2, attention_layers=1, dropout=0.0, feedforward_mult=2
    )
    heads = Heads(out_dim=1, counts=True)
    return AAMModel(config, max_bp=max_bp, heads=heads, category_sizes=[], fusion=None).eval()


@pytest.mark.parametrize("bucket", [False, True])
def test_encoding_in_a_batch_equals_encoding_alone(dataset, bucket):
    model = tiny_model(dataset.tokens.shape[1])
    rows = np.arange(len(dataset))
    batch = make_batch(dataset, rows, bucket=bucket)
    with torch.no_grad():
        together, _ = model.encode(batch)
        output = model(batch)
        for b, row in enumerate(rows):
            single = make_batch(dataset, [row])
            alone, _ = model.encode(single)
            n = int(single.mask.sum())
            assert alone.shape[1] == n
            torch.testing.assert_close(together[b, :n], alone[0], atol=1e-5, rtol=1e-5)
            out = model(single)
            torch.testing.assert_close(
                output.prediction[b], out.prediction[0], atol=1e-5, rtol=1e-5
            )
            torch.testing.assert_close(output.embedding[b], out.embedding[0], atol=1e-5, rtol=1e-5)
            if out.counts is not None:
                torch.testing.assert_close(
                    output.counts[b, :n], out.counts[0], atol=1e-5, rtol=1e-5
                )


def test_capped_batch_equals_capped_sample(dataset):
    model = tiny_model(dataset.tokens.shape[1])
    batch = make_batch(dataset, ROWS, max_asvs=4)
    with torch.no_grad():
        together = model(batch).prediction
        alone = torch.cat([model(make_batch(dataset, [r], max_asvs=4)).prediction for r in ROWS])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_all_padding_row_and_single_asv_are_finite(tiny_data, write_biom):
    counts = tiny_data.counts.copy()
    counts[0] = 0
    counts[0, 0] = 7  # sample 0 holds one ASV
    write_biom(tiny_data.table, counts, tiny_data.sequences, tiny_data.sample_ids)
    ds = load_dataset(tiny_data.config())
    model = tiny_model(ds.tokens.shape[1])
    batch = make_batch(ds, [0, 1, 2])
    assert int(batch.mask[0].sum()) == 1
    batch.mask[1] = False  # an all-padding row
    batch.counts[1] = 0
    with torch.no_grad():
        out = model(batch)
        single = model(make_batch(ds, [0]))
    assert torch.isfinite(out.prediction).all() and torch.isfinite(out.embedding).all()
    assert torch.isfinite(single.prediction).all()
    torch.testing.assert_close(out.prediction[0], single.prediction[0], atol=1e-5, rtol=1e-5)


def test_gradients_are_finite_with_padding(dataset):
    model = tiny_model(dataset.tokens.shape[1]).train()
    batch = make_batch(dataset, ROWS, bucket=True)
    batch.mask[0] = False
    model(batch).prediction.sum().backward()
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name
