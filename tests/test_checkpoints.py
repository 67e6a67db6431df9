"""The checkpoint file: versioned, written atomically and durably, migrated from older formats,
and refused with one line — never executed — when it is not what it should be."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from aam_core import CheckpointError, load_model, predict, train
from aam_core.checkpoint import FORMAT, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def run(module_tiny_data, tmp_path_factory):
    data = module_tiny_data()
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(
        table=data.table,
        metadata=data.metadata,
        metadata_column="age",
        categorical_columns="site",
        output_dir=out,
        embedding_dim=16,
        attention_heads=2,
        attention_layers=1,
        epochs=1,
        batch_size=8,
        max_bp=40,
    )
    return data, out


def raw(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_best_and_last_hold_format_kind_and_state(run):
    _, out = run
    best, last = raw(out / "checkpoints" / "best.pt"), raw(out / "checkpoints" / "last.pt")
    for payload in (best, last):
        assert payload["format"] == FORMAT and payload["kind"] == "train"
        assert payload["aam_version"]
    assert best["training_state"] is None
    state = last["training_state"]
    # no random state: every stream a step uses is seeded from (seed, epoch, batch, process)
    assert {"optimizer", "scheduler", "loop"} <= set(state)
    assert state["loop"]["epoch"] == 2 and state["loop"]["best_epoch"] == 1
    assert state["loop"]["world_size"] == 1


def _as_format_4(payload: dict) -> dict:
    """What format 4 wrote: no reference samples, no ``neighbours`` field."""
    old = {k: v for k, v in payload.items() if k != "references"}
    old["format"] = 4
    old["config"] = {**payload["config"], "model": {k: v for k, v in payload["config"]["model"].items() if k != "neighbours"}}
    return old


def _as_format_3(payload: dict) -> dict:
    """What format 3 wrote: no heads reading the categories from the unknown branch."""
    old = dict(_as_format_4(payload), format=3)
    old["model_state"] = {k: v for k, v in old["model_state"].items() if not k.startswith("category_heads.")}
    training = {k: v for k, v in old["config"]["training"].items() if k != "category_prediction_weight"}
    old["config"] = {**old["config"], "training": training}
    return old


def _as_format_2(payload: dict) -> dict:
    """What format 2 wrote: no head of its own for samples with every category unknown."""
    old = dict(_as_format_3(payload), format=2)
    old["model_state"] = {k: v for k, v in old["model_state"].items() if not k.startswith("unknown_head.")}
    model = {k: v for k, v in old["config"]["model"].items() if k != "unknown_head"}
    old["config"] = {**old["config"], "model": model}
    return old


def _as_format_1(payload: dict) -> dict:
    """What AAM 0.1 wrote: no kind, no training state, six token rows, an ``out_dim`` field."""
    old = {k: v for k, v in _as_format_2(payload).items() if k not in ("kind", "training_state")}
    old["format"] = 1
    state = dict(old["model_state"])
    state["asv_encoder.base_embedding.weight"] = state["asv_encoder.base_embedding.weight"][:6].clone()
    old["model_state"] = state
    old["config"] = {**old["config"], "model": {**old["config"]["model"], "out_dim": 1}}
    old["config"].pop("task")
    for key in ("test_fraction", "tree", "unifrac_matrix", "unifrac_metric", "prune_missing"):
        old["config"]["data"].pop(key)
    return old


def test_format_1_checkpoints_migrate_and_predict_the_same(run, tmp_path):
    data, out = run
    best = out / "checkpoints" / "best.pt"
    old = tmp_path / "old.pt"
    torch.save(_as_format_1(raw(best)), old)
    now = predict(load_model(best), data.table, metadata=data.metadata)
    then = predict(load_model(old), data.table, metadata=data.metadata)
    np.testing.assert_allclose(then["predicted"], now["predicted"], rtol=1e-6)
    migrated = load_checkpoint(old)
    assert migrated["format"] == FORMAT and migrated["kind"] == "train"
    assert migrated["model_state"]["asv_encoder.base_embedding.weight"].shape[0] == 7


def _migrated(run, tmp_path, convert, weights: str):
    """The run's ``best.pt`` (whose default model has ``weights``) rewritten by ``convert`` as an
    older format, and loaded again."""
    _, out = run
    best = out / "checkpoints" / "best.pt"
    assert any(k.startswith(weights) for k in raw(best)["model_state"])
    old = tmp_path / "old.pt"
    torch.save(convert(raw(best)), old)
    return best, load_model(old)


def test_format_2_checkpoints_migrate_to_the_main_head_for_unknown_categories(run, tmp_path):
    """A format-2 model had no separate unknown head: migrated, it predicts every sample with its
    main head, so samples with known categories keep their predictions."""
    data, _ = run
    best, migrated = _migrated(run, tmp_path, _as_format_2, "unknown_head.")
    assert migrated.model.unknown_head is None and migrated.config.model.unknown_head is False
    now = predict(load_model(best), data.table, metadata=data.metadata)
    then = predict(migrated, data.table, metadata=data.metadata)
    np.testing.assert_allclose(then["predicted"], now["predicted"], rtol=1e-6)


def test_format_4_checkpoints_migrate_without_reference_samples(run, tmp_path):
    """A format-4 model read no reference samples: migrated, it says ``neighbours`` 0, holds none
    and predicts as before."""
    data, out = run
    best = out / "checkpoints" / "best.pt"
    assert "references" in raw(best) and raw(best)["references"] is None
    old = tmp_path / "old.pt"
    torch.save(_as_format_4(raw(best)), old)
    migrated = load_model(old)
    assert migrated.config.model.neighbours == 0 and migrated.references is None
    assert load_checkpoint(old)["references"] is None
    now = predict(load_model(best), data.table, metadata=data.metadata)
    then = predict(migrated, data.table, metadata=data.metadata)
    np.testing.assert_allclose(then["predicted"], now["predicted"], rtol=1e-6)


def test_format_3_checkpoints_migrate_without_category_prediction(run, tmp_path):
    """A format-3 model had no category-prediction heads: migrated, it builds none, says weight 0,
    and predicts as before (those heads never feed a prediction)."""
    data, _ = run
    best, migrated = _migrated(run, tmp_path, _as_format_3, "category_heads.")
    assert migrated.model.category_heads is None and migrated.config.training.category_prediction_weight == 0
    for metadata in (data.metadata, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no metadata: categories unknown
            now = predict(load_model(best), data.table, metadata=metadata)
            then = predict(migrated, data.table, metadata=metadata)
        np.testing.assert_allclose(then["predicted"], now["predicted"], rtol=1e-6)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda p: {**p, "format": FORMAT + 1, "aam_version": "9.9"}, f"format {FORMAT + 1}, newer than this AAM reads"),
        (lambda p: {**p, "future_field": 1}, "keys this AAM does not know \\(future_field\\)"),
        (lambda p: {k: v for k, v in p.items() if k != "model_state"}, "missing model_state"),
        (lambda p: {**p, "kind": "pretrain"}, "is a 'pretrain' checkpoint where a 'train' one is needed"),
        (lambda p: list(p)[:3], "no format version"),
    ],
    ids=["newer-format", "unknown-key", "missing-weights", "pretrain-given-to-predict", "not-a-dict"],
)
def test_wrong_payloads_are_clear_errors(run, tmp_path, change, needle):
    _, out = run
    path = tmp_path / "bad.pt"
    torch.save(change(raw(out / "checkpoints" / "best.pt")), path)
    with pytest.raises(CheckpointError, match=needle):
        load_model(path)


def test_another_models_weights_are_refused(run, tmp_path):
    _, out = run
    payload = raw(out / "checkpoints" / "best.pt")
    payload["config"]["model"]["embedding_dim"] = 32
    path = tmp_path / "wide.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match the model its config describes"):
        load_model(path)


def test_truncated_and_foreign_files(run, tmp_path, run_cli):
    _, out = run
    whole = (out / "checkpoints" / "best.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_model(truncated)
    for junk in ("hello\n", "not a checkpoint\n", ""):
        path = tmp_path / "junk.pt"
        path.write_text(junk)
        with pytest.raises(CheckpointError, match="junk.pt"):
            load_model(path)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    result = run_cli("predict", "--model", text, "--table", out / "x.biom", "--output", tmp_path / "p.tsv")
    assert result.code == 2 and result.err.count("\n") == 1 and "notes.pt" in result.err


class _Payload:
    """Unpickling this would run a command: ``weights_only`` must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_loading_never_runs_pickled_code(tmp_path, container):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "kind": "train", "config": {}, "model_state": _Payload(marker)}
    if container == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_save_is_atomic_and_durable(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    save_checkpoint(target, {"kind": "train", "config": {}, "model_state": {"w": torch.ones(2)}})
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    save_checkpoint(target, {"kind": "train", "config": {}, "model_state": {"w": torch.zeros(2)}})
    assert len(synced) == 2  # the file, then its directory
    assert raw(target)["model_state"]["w"].sum() == 0

    def broken(obj, handle):
        handle.write(b"half a checkpoint" + bytes(len(obj)))
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, {"kind": "train", "config": {}, "model_state": {}})
    assert raw(target)["model_state"]["w"].sum() == 0  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left
    with pytest.raises(ValueError, match="unknown checkpoint keys"):
        save_checkpoint(target, {"kind": "train", "config": {}, "model_state": {}, "extra": 1})

