"""Runs you can trust: a run killed by a real signal resumes to exactly the result of a run that
was never interrupted; resuming restores every state, applies or refuses changed flags, and the
output directory says what state the run is in."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_outcome

from aam_core import ConfigError, train
from aam_core.checkpoint import load_checkpoint
from aam_core.errors import CheckpointError, TrainingError

#: A small run with enough optimizer steps (24 per epoch) to be interrupted mid-epoch; dropout
#: and hidden abundances are on, so the restored random streams matter.
RUN = {
    "embedding_dim": 16,
    "attention_heads": 2,
    "attention_layers": 1,
    "max_bp": 40,
    "batch_size": 2,
    "epochs": 3,
    "dropout": 0.2,
    "seed": 5,
    "checkpoint_every": 1,
}


def flags(data, out) -> list[str]:
    base = ["--table", data.table, "--metadata", data.metadata, "--metadata-column", "age"]
    for key, value in RUN.items():
        base += ["--" + key.replace("_", "-"), str(value)]
    return [*base, "--output-dir", out]


def loop_position(path: Path) -> tuple[int, int] | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["training_state"]["loop"]
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return None
    return state["epoch"], state["batch"]


def interrupt_mid_run(process, run_dir: Path, sig: int) -> None:
    """Send ``sig`` once ``last.pt`` shows the run inside its second epoch."""
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run finished before it could be interrupted: " + process.communicate()[1]
        position = loop_position(last)
        if position is not None and position[0] >= 2 and position[1] >= 3:
            process.send_signal(sig)
            return
        time.sleep(0.01)
    raise AssertionError("the run never reached its second epoch")


@pytest.fixture(scope="module")
def data(module_tiny_data):
    return module_tiny_data(n_samples=60)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The same command, never interrupted (in a fresh process, one thread, as the others)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "aam_core.cli", "train", *map(str, flags(data, out))],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["SIGKILL", "SIGTERM", "SIGINT"],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(data, reference, start_aam, run_cli, tmp_path, sig, code):
    out = tmp_path / "run"
    process = start_aam("train", *flags(data, out))
    interrupt_mid_run(process, out, sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    status = json.loads((out / "run_status.json").read_text())
    if sig == signal.SIGKILL:
        assert status["status"] == "running"  # nothing could record the kill
    else:
        assert status["status"] == "interrupted"
        assert err.strip().splitlines()[-1].startswith("aam: error: Interrupted by")
        assert "--resume-from" in err
        epoch, batch = loop_position(out / "checkpoints" / "last.pt")
        assert epoch >= 2  # saved at the step the signal arrived, not at an epoch end
    # a fresh run in that directory is refused, pointing at --resume-from
    refused = run_cli("train", *flags(data, out))
    assert refused.code == 2 and "--resume-from" in refused.err

    resumed = start_aam("train", "--resume-from", out / "checkpoints" / "last.pt")
    stdout, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "Resuming train from" in err

    frame, metrics = run_outcome(out)
    expected_frame, expected_metrics = run_outcome(reference)
    pd.testing.assert_frame_equal(frame, expected_frame, check_exact=False, rtol=1e-5)
    assert metrics.keys() == expected_metrics.keys()
    assert metrics["best_epoch"] == expected_metrics["best_epoch"]
    np.testing.assert_allclose(
        [metrics["val"][k] for k in ("mae", "rmse", "r2")],
        [expected_metrics["val"][k] for k in ("mae", "rmse", "r2")],
        rtol=1e-5,
    )
    assert len(metrics["history"]) == len(expected_metrics["history"]) == RUN["epochs"]
    for got, want in zip(metrics["history"], expected_metrics["history"], strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-4)
    assert json.loads((out / "run_status.json").read_text())["status"] == "completed"
    assert not [p for p in out.rglob("*") if p.name.endswith(".aamtmp")]  # no stray temporaries


# -- in-process resume behaviour -------------------------------------------------------------------
def _train(data, out, **options):
    values = dict(table=data.table, metadata=data.metadata, metadata_column="age", output_dir=out)
    return train(**{**values, **{k: v for k, v in RUN.items() if k != "checkpoint_every"}, **options})


@pytest.fixture
def finished(tiny_data, tmp_path, recorded_plots):
    del recorded_plots
    out = tmp_path / "run"
    _train(tiny_data, out, epochs=2, lr=3e-4)
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_lr_override_reaches_every_group_and_the_schedule(finished, caplog, recorded_plots):
    del recorded_plots
    last = finished / "checkpoints" / "last.pt"
    with caplog.at_level(logging.INFO, logger="aam"):
        result = train(resume_from=last, lr=1e-4, epochs=3)
    assert "learning rate: main 0.0003 → 0.0001" in caplog.text
    assert result.metrics["epochs_run"] == 3 and len(result.metrics["history"]) == 3
    state = load_checkpoint(last)["training_state"]
    assert [g["initial_lr"] for g in state["optimizer"]["param_groups"]] == [1e-4]
    assert state["scheduler"]["base_lrs"] == [1e-4]
    assert state["loop"]["epoch"] == 4
    # the history of epoch 3 logs the new rate times the schedule's factor, not the old one
    assert result.metrics["history"][2]["lr/main"] < 1e-4


def test_without_lr_the_schedule_continues(finished, recorded_plots):
    del recorded_plots
    last = finished / "checkpoints" / "last.pt"
    before = load_checkpoint(last)["training_state"]["scheduler"]
    train(resume_from=last, epochs=3)
    after = load_checkpoint(last)["training_state"]["scheduler"]
    assert after["base_lrs"] == before["base_lrs"]
    assert after["last_epoch"] > before["last_epoch"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"embedding_dim": 32}, "--embedding-dim 32 differs from the checkpoint's 16"),
        ({"fusion": "gmu", "categorical_columns": "site"}, "differs from the checkpoint"),
        ({"output_dir": "elsewhere"}, "--output-dir elsewhere differs"),
    ],
)
def test_other_changed_flags_are_refused_and_touch_nothing(finished, options, needle):
    before = snapshot(finished)
    with pytest.raises(ConfigError, match=needle):
        train(resume_from=finished / "checkpoints" / "last.pt", **options)
    assert snapshot(finished) == before


def test_resume_needs_last_pt_and_no_config(finished, tmp_path):
    with pytest.raises(CheckpointError, match="no training state"):
        train(resume_from=finished / "checkpoints" / "best.pt")
    with pytest.raises(ConfigError, match="--config cannot be combined"):
        train(finished / "config.json", resume_from=finished / "checkpoints" / "last.pt")
    with pytest.raises(ConfigError, match="already ran its 2 epochs"):
        train(resume_from=finished / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="not found"):
        train(resume_from=tmp_path / "nothing" / "checkpoints" / "last.pt")


def test_val_predictions_written_when_resuming_never_improves(finished, caplog, recorded_plots):
    del recorded_plots
    best_epoch = json.loads((finished / "metrics.json").read_text())["best_epoch"]
    (finished / "val_predictions.tsv").unlink()
    with caplog.at_level(logging.INFO, logger="aam"):
        result = train(resume_from=finished / "checkpoints" / "last.pt", epochs=3, lr=1e-30)
    assert result.best_epoch == best_epoch  # a learning rate of 1e-30 changes nothing
    frame = pd.read_csv(finished / "val_predictions.tsv", sep="\t")
    assert set(frame["epoch"]) == {best_epoch}
    assert f"val_predictions.tsv holds the model of epoch {best_epoch}" in caplog.text


def test_non_finite_loss_stops_naming_epoch_and_step(tiny_data, tmp_path, monkeypatch, recorded_plots):
    del recorded_plots
    from aam_core.training.supervised import SupervisedTask

    original = SupervisedTask.loss

    def poisoned(self, model, batch, epoch, index):
        loss, parts = original(self, model, batch, epoch, index)
        return (loss * float("nan"), parts) if (epoch, index) == (2, 3) else (loss, parts)

    monkeypatch.setattr(SupervisedTask, "loss", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="Loss became nan at epoch 2, step 3"):
        _train(tiny_data, out, checkpoint_every=1)
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (last["training_state"]["loop"]["epoch"], last["training_state"]["loop"]["batch"]) == (2, 2)
    assert all(torch.isfinite(v).all() for v in last["model_state"].values() if v.is_floating_point())
    status = json.loads((out / "run_status.json").read_text())
    assert status["status"] == "failed" and "Loss became nan" in status["message"]


def test_failed_run_without_checkpoints_does_not_block_a_rerun(tiny_data, tmp_path, monkeypatch, recorded_plots):
    del recorded_plots
    from aam_core.training.supervised import SupervisedTask

    original = SupervisedTask.loss
    monkeypatch.setattr(SupervisedTask, "loss", lambda self, *a: (original(self, *a)[0] * float("inf"), {}))
    out = tmp_path / "run"
    with pytest.raises(TrainingError):
        _train(tiny_data, out)
    assert json.loads((out / "run_status.json").read_text())["status"] == "failed"
    assert not (out / "checkpoints" / "last.pt").exists()
    monkeypatch.setattr(SupervisedTask, "loss", original)
    _train(tiny_data, out, epochs=1)  # no --force needed: the failed run held nothing useful
    assert json.loads((out / "run_status.json").read_text())["status"] == "completed"


def test_force_removes_only_what_aam_wrote(finished, tiny_data, recorded_plots):
    del recorded_plots
    (finished / "notes.txt").write_text("mine\n")
    (finished / "checkpoints" / "my-model.pt").write_bytes(b"mine")
    (finished / "plots" / "figure-for-the-paper.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="--force"):
        _train(tiny_data, finished, epochs=1)
    _train(tiny_data, finished, epochs=1, seed=9, force=True)
    assert (finished / "notes.txt").read_text() == "mine\n"
    assert (finished / "checkpoints" / "my-model.pt").read_bytes() == b"mine"
    assert (finished / "plots" / "figure-for-the-paper.png").read_bytes() == b"mine"
    assert json.loads((finished / "config.json").read_text())["training"]["seed"] == 9
    assert len(list((finished / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_config_json_reproduces_the_run(finished, tmp_path, run_cli, recorded_plots):
    del recorded_plots
    again = tmp_path / "again"
    result = run_cli("train", "--config", finished / "config.json", "--output-dir", again)
    assert result.code == 0, result.err
    for name in ("train_samples.txt", "val_samples.txt", "val_predictions.tsv"):
        assert (again / name).read_text() == (finished / name).read_text(), name
