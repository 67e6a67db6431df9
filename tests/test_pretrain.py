"""Pretraining on UniFrac + masked nucleotides, and fine-tuning from its encoder: both losses
fall, masks really hide, the encoder loads (or is refused naming the setting), frozen weights
stay bitwise the same, and the embedding cache changes nothing but speed."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
import torch

from aam_core import CheckpointError, ConfigError, DataError, load_model, pretrain, train
from aam_core.checkpoint import load_checkpoint
from aam_core.data import load_dataset
from aam_core.data.batching import collate
from aam_core.data.tokens import MASK_TOKEN
from aam_core.model.build import build_model
from aam_core.options import build_config
from aam_core.training import augment

ENCODER = {"embedding_dim": 16, "attention_heads": 2, "attention_layers": 1, "max_bp": 40}


@pytest.fixture(scope="module")
def data(module_tiny_data):
    from conftest import random_newick

    tiny = module_tiny_data(n_samples=40)
    (tiny.folder / "tree.nwk").write_text(random_newick(tiny.sequences, seed=1) + "\n")
    return tiny


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    result = pretrain(
        table=data.table, tree=data.folder / "tree.nwk", output_dir=out, epochs=6, batch_size=8, lr=3e-3, seed=1, **ENCODER
    )
    return result


def test_both_losses_fall_and_predictions_spread(pretrained):
    history = pretrained.metrics["history"]
    assert len(history) == 6
    first, last = history[0], history[-1]
    assert last["train/unifrac_loss"] < 0.5 * first["train/unifrac_loss"]
    # The tiny data's sequences are random: the best a model can do is the base frequencies
    # (cross-entropy log 4 ≈ 1.386), down from a uniform guess over A C G T N (log 5 ≈ 1.609).
    assert last["train/nuc_loss"] < first["train/nuc_loss"] - 0.1
    assert last["train/nuc_loss"] < np.log(5) - 0.1
    val = pretrained.metrics["val"]
    assert val["unifrac_pred_max"] - val["unifrac_pred_min"] > 0.25 * (val["unifrac_true_max"] - val["unifrac_true_min"])
    assert 0.0 <= val["nuc_accuracy"] <= 1.0
    out = pretrained.output_dir
    assert (out / "val_distances.tsv").is_file() and (out / "plots" / "unifrac_predicted_vs_true.png").is_file()
    assert load_checkpoint(out / "checkpoints" / "best.pt")["kind"] == "pretrain"
    assert json.loads((out / "run_status.json").read_text())["status"] == "completed"


def test_masked_bases_are_hidden_from_every_output(data):
    config = build_config(table=str(data.table), task="pretrain", nuc_penalty=1.0, unifrac_penalty=1.0, **ENCODER)
    torch.manual_seed(0)
    model = build_model(config, out_dim=None, category_sizes=[], scaling=None).eval()
    dataset = load_dataset(config.data, target_required=False)
    batch = collate(dataset, np.arange(6), max_asvs=64, categories=np.zeros((len(dataset), 0), dtype=np.int64), target=None)

    def masked_outputs(tokens):
        original = attrs.evolve(batch, asv_tokens=tokens)
        masked = augment.mask_patches(original, 4, 0.15, np.random.default_rng(3))
        with torch.no_grad():
            out = model(masked)
        return masked, torch.cat([out.embedding.flatten(), out.unifrac.flatten(), out.nucleotides.flatten()])

    masked, reference = masked_outputs(batch.asv_tokens)
    hidden = masked.asv_tokens == MASK_TOKEN
    assert hidden.any()
    # whole patches: every masked base's patch is masked wherever it holds a base
    rows, cols = np.nonzero(hidden.numpy())
    start = (cols[0] // 4) * 4
    patch = masked.asv_tokens[rows[0], start : start + 4]
    assert ((patch == MASK_TOKEN) | (patch == 0)).all()
    assert (masked.nucleotide_target[hidden] >= 0).all() and (masked.nucleotide_target[~hidden] == -1).all()

    changed = batch.asv_tokens.clone()
    changed[rows[0], cols[0]] = 1 + (changed[rows[0], cols[0]] % 4)  # another base under the mask
    _, outputs = masked_outputs(changed)
    assert torch.equal(outputs, reference)

    visible = np.argwhere((~hidden.numpy()) & (batch.asv_tokens.numpy() > 0))[0]
    changed = batch.asv_tokens.clone()
    changed[visible[0], visible[1]] = 1 + (changed[visible[0], visible[1]] % 4)
    _, outputs = masked_outputs(changed)
    assert not torch.equal(outputs, reference)  # the same change where nothing is masked shows


def _finetune(data, out, **options):
    values = dict(table=data.table, metadata=data.metadata, metadata_column="age", output_dir=out, epochs=1, batch_size=8)
    return train(**{**values, **ENCODER, **options})


def test_pretrained_encoder_loads_and_frozen_weights_stay_bitwise(data, pretrained, tmp_path, recorded_plots):
    del recorded_plots
    best = pretrained.output_dir / "checkpoints" / "best.pt"
    encoder = {k: v for k, v in load_checkpoint(best)["model_state"].items() if k.startswith(("asv_encoder.", "sample_encoder.", "pool."))}
    frozen = _finetune(data, tmp_path / "frozen", pretrained_encoder=best, freeze_base=True, epochs=2)
    state = load_checkpoint(frozen.output_dir / "checkpoints" / "last.pt")["model_state"]
    for key, value in encoder.items():
        if key.startswith("asv_encoder."):
            assert torch.equal(state[key], value), key  # frozen: bitwise unchanged
    moved = [k for k in encoder if k.startswith("sample_encoder.") and not torch.equal(state[k], encoder[k])]
    assert moved  # the sample encoder was fine-tuned from the pretrained weights
    trainable = [p for n, p in frozen.model.model.named_parameters() if n.startswith("asv_encoder.")]
    assert not any(p.requires_grad for p in trainable)


def test_the_embedding_cache_gives_the_uncached_predictions(data, pretrained, tmp_path, recorded_plots):
    del recorded_plots
    from aam_core.training.encoder_cache import EncoderCache

    best = pretrained.output_dir / "checkpoints" / "best.pt"
    result = _finetune(data, tmp_path / "run", pretrained_encoder=best, freeze_base=True)
    model = result.model.model.eval()
    dataset = load_dataset(result.config.data)
    rows = np.arange(len(dataset))
    batch = collate(dataset, rows, max_asvs=256, categories=np.zeros((len(dataset), 0), dtype=np.int64), target=None)
    batch = batch.to(next(model.parameters()).device)  # the model is on the GPU where there is one
    cache = EncoderCache(model.asv_encoder)
    with torch.no_grad():
        plain = model(batch).prediction
        cached = model(cache.attach(batch, dataset.sequences)).prediction
        again = model(cache.attach(batch, dataset.sequences)).prediction
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-6)
    assert torch.equal(again, cached) and len(cache) == len(batch.features)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"embedding_dim": 32}, "--embedding-dim 32 differs from the pretrained encoder's 16"),
        ({"patch_size": 2}, "--patch-size 2 differs from the pretrained encoder's 4"),
        ({"max_bp": 60}, "--max-bp 60 differs from the pretrained encoder's 40"),
        ({"attention_layers": 2}, "--attention-layers 2 differs from the pretrained encoder's 1"),
        ({"asv_layers": 2}, "--asv-layers 2 differs from the pretrained encoder's 1"),
    ],
)
def test_architecture_mismatch_names_the_setting(data, pretrained, tmp_path, change, needle):
    best = pretrained.output_dir / "checkpoints" / "best.pt"
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=needle):
        _finetune(data, out, pretrained_encoder=best, **change)
    assert not out.exists()


def test_checkpoint_kinds_are_not_interchangeable(data, pretrained, tmp_path, recorded_plots):
    del recorded_plots
    best = pretrained.output_dir / "checkpoints" / "best.pt"
    with pytest.raises(CheckpointError, match="pretrained encoder: fine-tune it with 'aam train --pretrained-encoder'"):
        load_model(best)
    fine = _finetune(data, tmp_path / "fine")
    with pytest.raises(CheckpointError, match="is a 'train' checkpoint where a 'pretrain' one is needed"):
        _finetune(data, tmp_path / "again", pretrained_encoder=fine.output_dir / "checkpoints" / "best.pt")


def test_precomputed_matrix_is_matched_by_id(data, tmp_path):
    from aam_core.unifrac import unifrac

    full = unifrac(data.table, data.folder / "tree.nwk", tmp_path / "dm.tsv")
    result = pretrain(table=data.table, unifrac_matrix=full, output_dir=tmp_path / "run", epochs=1, batch_size=8, **ENCODER)
    assert result.metrics["val"]["unifrac_pairs"] > 0
    lines = full.read_text().splitlines()
    keep = [lines[0].split("\t")[:-1]] + [line.split("\t")[:-1] for line in lines[1:-1]]
    short = tmp_path / "short.tsv"
    short.write_text("\n".join("\t".join(row) for row in keep) + "\n")
    with pytest.raises(DataError, match="1 of 40 samples are not in .*short.tsv"):
        pretrain(table=data.table, unifrac_matrix=short, output_dir=tmp_path / "bad", epochs=1, **ENCODER)
    assert not (tmp_path / "bad").exists()


def test_pretrain_flags_that_cannot_work(data, tmp_path):
    tree = data.folder / "tree.nwk"
    with pytest.raises(ConfigError, match="needs --tree or --unifrac-matrix"):
        pretrain(table=data.table, output_dir=tmp_path / "a", **ENCODER)
    with pytest.raises(ConfigError, match="--batch-size must be at least 2"):
        pretrain(table=data.table, tree=tree, batch_size=1, output_dir=tmp_path / "b", **ENCODER)
    with pytest.raises(ConfigError, match="both 0"):
        pretrain(table=data.table, tree=tree, unifrac_penalty=0, nuc_penalty=0, output_dir=tmp_path / "c", **ENCODER)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_unifrac_as_an_auxiliary_loss_in_training(data, tmp_path, recorded_plots):
    del recorded_plots
    result = _finetune(data, tmp_path / "run", tree=data.folder / "tree.nwk", unifrac_penalty=0.5, epochs=2)
    assert all("train/unifrac_loss" in entry for entry in result.metrics["history"])
    with pytest.raises(ConfigError, match="--unifrac-penalty needs --tree"):
        _finetune(data, tmp_path / "bad", unifrac_penalty=0.5)


def test_pretrain_cli_and_resume(data, tmp_path, run_cli):
    out = tmp_path / "run"
    flags = ["--table", data.table, "--tree", data.folder / "tree.nwk", "--output-dir", out, "--epochs", "1"]
    flags += [f"--{k.replace('_', '-')}={v}" for k, v in ENCODER.items()]
    result = run_cli("pretrain", *flags)
    assert result.code == 0, result.err
    assert "Best epoch 1" in result.out
    result = run_cli("pretrain", "--resume-from", out / "checkpoints" / "last.pt", "--epochs", "2")
    assert result.code == 0, result.err
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
