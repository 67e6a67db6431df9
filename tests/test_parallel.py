"""Parallel strategies: the contract over every registered one, ``ddp`` and ``fsdp`` in two gloo
processes under torchrun (``parallel_worker.py``), the pairwise UniFrac gradient across
processes, ``dp``'s batch split, and the pieces of the GPU path that run on a CPU.

Two torchrun launches make this file's cost (under a minute on two cores): one runs the worker
(every multi-process check, in one process group), one runs ``aam train --parallel ddp`` as a
person would. CUDA-only paths skip without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_outcome
from parallel_contract import check_strategy
from parallel_worker import TINY

from aam_core import ConfigError, list_plugins, load_model, predict
from aam_core.data import load_dataset
from aam_core.data.batching import BatchKey, BatchLoader, ShardSampler, collate, epoch_keys
from aam_core.model.layers import key_mask
from aam_core.training.metrics import compute_metrics

HERE = Path(__file__).resolve().parent
CUDA = torch.cuda.is_available()
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def data(module_tiny_data):
    from conftest import random_newick

    tiny = module_tiny_data(n_samples=40)
    (tiny.folder / "tree.nwk").write_text(random_newick(tiny.sequences) + "\n")
    return tiny


@pytest.fixture(scope="module")
def worker(data, tmp_path_factory):
    """Everything ``parallel_worker.py`` did with two processes, and its results."""
    out = tmp_path_factory.mktemp("parallel")
    done = subprocess.run(
        [*TORCHRUN, str(HERE / "parallel_worker.py"), str(data.folder), str(out)],
        capture_output=True, text=True, env=_env(), timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out / "runs", json.loads((out / "results.json").read_text())


# -- the contract, over every registered strategy -------------------------------------------------
@pytest.mark.parametrize("name", [info.name for info in list_plugins("parallel")])
def test_every_strategy_keeps_the_contract(name, worker, tmp_path, monkeypatch):
    """On one CPU process what can run here; ddp and fsdp ran it in two (the worker)."""
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)
    _, results = worker
    spec = next(info.spec for info in list_plugins("parallel") if info.name == name)
    if name in ("ddp", "fsdp"):
        assert results["contract"][name] == "ok"
        with pytest.raises(ConfigError, match=r"under torchrun; start it with: torchrun --standalone --nproc-per-node \d+ "):
            spec.factory(device="cpu", options=spec.make_options({}))
        return
    if name == "dp" and not CUDA:
        with pytest.raises(ConfigError, match="has none; use --parallel single"):
            spec.factory(device=None, options=None)
        return
    device = "cuda" if CUDA and name in ("single", "dp") else "cpu"  # on a GPU machine, the GPU path
    try:
        strategy = spec.factory(device=device, options=spec.make_options({}))
    except ConfigError as exc:  # a third-party strategy that cannot run here
        pytest.skip(f"{name} cannot run on this machine: {exc}")
    try:
        check_strategy(strategy, tmp_path)
    finally:
        strategy.teardown()


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--parallel", "ddp"], [f"torchrun --standalone --nproc-per-node {torch.cuda.device_count() or 2} -m aam_core.cli train --table", "--parallel ddp --output-dir"]),
        (["--parallel", "fsdp"], ["torchrun --standalone --nproc-per-node", "--parallel fsdp"]),
        pytest.param(["--parallel", "dp"], ["--parallel dp", "use --parallel single"], marks=pytest.mark.skipif(CUDA, reason="has CUDA")),
        (["--fsdp-sharded-checkpoint"], ["--fsdp-sharded-checkpoint", "does not apply to parallel 'single'"]),
        (["--strategy-option", "bogus=1"], ["--bogus", "does not apply to parallel 'single'"]),
    ],
    ids=["ddp", "fsdp", "dp", "fsdp-flag-elsewhere", "unknown-option"],
)
def test_a_strategy_that_cannot_run_says_what_to_run(data, run_cli, tmp_path, monkeypatch, flags, needles):
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)
    out = tmp_path / "run"
    files = ["--table", data.table, "--metadata", data.metadata, "--metadata-column", "age"]
    command = ["train", *map(str, files), *flags, "--output-dir", str(out)]
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).with_name("aam")), *command])  # as the console script sees it
    result = run_cli(*command)
    assert result.code == 2, result.err
    line = result.err.strip()
    assert "\n" not in line and all(n in line for n in needles), line
    assert not out.exists()


# -- two processes ------------------------------------------------------------------------------
def test_only_the_global_zero_process_writes(worker):
    runs, results = worker
    assert results["foreign_writes"] == []
    for name in ("ddp", "fsdp", "fsdp-resumed", "pretrain"):
        status = json.loads((runs / name / "run_status.json").read_text())
        assert status["status"] == "completed", name
        assert len(list((runs / name / "tensorboard").glob("events.out.tfevents.*"))) == (2 if name == "fsdp-resumed" else 1)


@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_validation_counts_each_sample_once_and_equals_one_process(worker, data, name):
    runs, _ = worker
    run = runs / name
    frame = pd.read_csv(run / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    val_ids = (run / "val_samples.txt").read_text().split()
    assert sorted(frame["sample_id"]) == sorted(val_ids) and frame["sample_id"].is_unique

    loaded = load_model(run / "checkpoints" / "best.pt", device="cpu")  # one device, no process group
    alone = predict(loaded, data.table, metadata=data.metadata)
    merged = frame.merge(alone, on="sample_id", suffixes=("", "_alone"))
    assert len(merged) == len(val_ids)
    np.testing.assert_allclose(merged["predicted"], merged["predicted_alone"], rtol=1e-5)
    expected = compute_metrics(merged["actual_alone"].to_numpy(), merged["predicted_alone"].to_numpy(), False)
    metrics = json.loads((run / "metrics.json").read_text())
    stored = metrics["val"]
    for key in ("mae", "rmse", "r2"):
        np.testing.assert_allclose(stored[key], expected[key], rtol=1e-5)
    assert stored["n"] == len(val_ids)
    # the unknown-category head's pass, which also picks the best epoch, is gathered the same way
    with pytest.warns(UserWarning, match="No --metadata"):
        hidden = predict(loaded, data.table).set_index("sample_id").loc[merged["sample_id"], "predicted"].to_numpy()
    expected = compute_metrics(merged["actual_alone"].to_numpy(), hidden, False)
    np.testing.assert_allclose(metrics["val_categories_hidden"]["mae"], expected["mae"], rtol=1e-5)


def test_fsdp_run_stopped_by_one_process_signal_resumes_exactly(worker):
    """Only rank 1 got the SIGTERM; both stopped at the same step, saved one last.pt and the
    resumed run ends as the uninterrupted one did — the loss history included."""
    runs, _ = worker
    frame, metrics = run_outcome(runs / "fsdp-resumed")
    expected_frame, expected_metrics = run_outcome(runs / "fsdp")
    pd.testing.assert_frame_equal(frame, expected_frame, check_exact=False, rtol=1e-5)
    assert metrics["best_epoch"] == expected_metrics["best_epoch"]
    assert len(metrics["history"]) == len(expected_metrics["history"]) == 2
    for got, want in zip(metrics["history"], expected_metrics["history"], strict=True):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=1e-4)


def test_fsdp_sharded_checkpoint_holds_the_weights_of_last_pt(worker):
    import torch.distributed.checkpoint as dcp

    from aam_core.checkpoint import load_checkpoint

    runs, _ = worker
    folder = runs / "fsdp" / "checkpoints" / "sharded"
    assert {p.name for p in folder.iterdir()} >= {".metadata", "__0_0.distcp", "__1_0.distcp"}
    listed = json.loads((runs / "fsdp" / "run_status.json").read_text())["files"]
    assert "checkpoints/sharded/__1_0.distcp" in listed  # --force removes it with the run
    last = load_checkpoint(runs / "fsdp" / "checkpoints" / "last.pt")["model_state"]
    state = {"model": {k: torch.zeros_like(v) for k, v in last.items()}}
    dcp.load(state, checkpoint_id=folder)  # two shards read back by one process
    for key, value in last.items():
        assert torch.equal(state["model"][key], value), key


@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_pairwise_unifrac_gradients_span_processes(worker, name):
    """2 processes × B samples give the gradients of 1 process × 2B; the classic mistake (the
    gather passes back only the local slice's gradient) does not, so the check can fail."""
    _, results = worker
    found = results["gradients"][name]
    assert found["error"] < 1e-5
    assert found["local_slice_only_error"] > 1e-2


def test_pretraining_validation_pairs_equal_one_process(worker):
    from aam_core.checkpoint import load_checkpoint
    from aam_core.loading import restore
    from aam_core.training.pretrain import PretrainTask
    from aam_core.training.unifrac_source import distance_source
    from aam_plugins.parallel.single import SingleDeviceStrategy

    runs, _ = worker
    run = runs / "pretrain"
    path = run / "checkpoints" / "best.pt"
    loaded = restore(load_checkpoint(path, kind="pretrain"), path, "cpu")
    config = loaded.config
    dataset = load_dataset(config.data, target_required=False, keep_all=False)
    rows = {name: dataset.rows_of((run / f"{name}_samples.txt").read_text().split()) for name in ("train", "val")}
    task = PretrainTask(
        config=config, model=loaded.model, dataset=dataset, train_rows=rows["train"], val_rows=rows["val"],
        distances=distance_source(config.data, dataset), strategy=SingleDeviceStrategy(device="cpu"),
    )  # fmt: skip
    with torch.no_grad():
        alone = task.validate(loaded.model).payload
    written = pd.read_csv(run / "val_distances.tsv", sep="\t", dtype={"sample_a": str, "sample_b": str})
    pd.testing.assert_frame_equal(written.drop(columns="epoch"), alone, check_exact=False, rtol=1e-5, check_dtype=False)


def test_aam_train_under_torchrun(data, tmp_path):
    """The command a person runs: one log, the per-process and the global batch, rank 0's files."""
    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    done = subprocess.run(
        [*TORCHRUN, "-m", "aam_core.cli", "train", "--table", str(data.table), "--metadata", str(data.metadata),
         "--metadata-column", "age", *flags, "--epochs", "1", "--parallel", "ddp", "--device", "cpu",
         "--output-dir", str(out)],
        capture_output=True, text=True, env={**_env(), "PYTHONWARNINGS": "default"}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count("Parallel ddp: 2 processes on cpu; --batch-size 4 per process, global batch 8.") == 1
    assert done.stderr.count("epoch 1/1") == 1
    assert done.stdout.count("outputs in") == 1
    # --batch-size is per process: 16 samples each, 4 steps; warned once (rank 1 keeps quiet)
    assert done.stderr.count("Only 4 optimizer steps per epoch (32 training samples over 2 processes") == 1
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "val_predictions.tsv").is_file()


# -- one process ---------------------------------------------------------------------------------
def test_shard_sampler_deals_equal_shares_of_one_order():
    shares = []
    for rank in range(3):
        sampler = ShardSampler(10, replicas=3, rank=rank, seed=1)
        sampler.set_epoch(4)
        shares.append(list(sampler))
    assert [len(s) for s in shares] == [4, 4, 4]
    dealt = [i for s in shares for i in s]
    assert set(dealt) == set(range(10)) and len(dealt) == 12  # two wrap around
    alone = ShardSampler(10, seed=1)
    alone.set_epoch(4)
    assert list(alone) == np.random.default_rng((1, 4)).permutation(10).tolist()


def test_loader_workers_build_the_batches_of_the_main_process(data):
    from aam_core.training.supervised import SupervisedBatches

    dataset = load_dataset(data.config(categorical_columns=["site"]))
    build = SupervisedBatches(
        dataset=dataset, codes=np.zeros((len(dataset), 1), dtype=np.int64), target=dataset.target.astype(np.float32),
        hidden_target=-dataset.target.astype(np.float32), max_asvs=8, bucket=False, seed=3, category_dropout=0.5, count_mask_ratio=0.3, distances=None,
        neighbours=np.arange(len(dataset) * 8, dtype=np.float32).reshape(-1, 2, 4),
    )  # fmt: skip
    sampler = ShardSampler(len(dataset), seed=3)
    keys = epoch_keys(np.arange(len(dataset)), sampler, epoch=2, batch_size=6)
    inline = list(BatchLoader(build)(keys))
    ahead = list(BatchLoader(build, workers=2)(keys))
    resumed = list(BatchLoader(build)(epoch_keys(np.arange(len(dataset)), sampler, epoch=2, batch_size=6, start=3)))
    assert len(inline) == len(ahead) == len(keys) and len(resumed) == len(keys) - 3
    for a, b in zip(inline, ahead, strict=True):
        for name in ("asv_tokens", "asv_index", "counts", "mask", "categories", "count_mask", "unknown_target", "neighbours"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        # the unknown branch's target is the hidden one, and the reference summaries are the
        # batch's own samples', row for row
        assert torch.equal(a.unknown_target, torch.as_tensor(-dataset.target[a.rows].astype(np.float32)))
        assert torch.equal(a.neighbours, torch.from_numpy(build.neighbours[a.rows]))
    for a, b in zip(inline[3:], resumed, strict=True):
        assert torch.equal(a.count_mask, b.count_mask) and torch.equal(a.categories, b.categories)


def _model(data, **options):
    from aam_core.model.build import build_model
    from aam_core.options import build_config

    config = build_config(table=str(data.table), **{**TINY, "dropout": 0.0, **options})
    torch.manual_seed(0)
    return config, build_model(config, out_dim=1, category_sizes=[4] if config.data.categorical_columns else [], scaling=None)


def test_attention_without_padding_runs_maskless_and_changes_nothing(data, write_biom, tmp_path):
    """Equal-length ASVs and equal ASV counts: the batch says so from the host, attention runs
    without a mask (SDPA may take its fused kernels) and computes what the masked path does."""
    import attrs
    from conftest import random_sequences

    from aam_core.config import DataConfig

    assert key_mask(None) is None
    _, model = _model(data)
    model.eval()
    rng = np.random.default_rng(2)
    sequences = random_sequences(rng, 12, 32, 32)
    counts = np.zeros((3, 12), dtype=np.int64)
    for row in range(3):
        counts[row, rng.choice(12, size=4, replace=False)] = rng.choice(np.arange(1, 99), size=4, replace=False)
    table = write_biom(tmp_path / "t.biom", counts, sequences, ["A", "B", "C"])
    dataset = load_dataset(DataConfig(table=str(table)), target_required=False)
    none = np.zeros((3, 0), dtype=np.int64)
    batch = collate(dataset, np.arange(3), max_asvs=64, categories=none, target=None)
    assert batch.full_asvs and batch.full_samples
    with torch.no_grad():
        fused = model(batch).embedding
        masked = model(attrs.evolve(batch, full_asvs=False, full_samples=False)).embedding
    torch.testing.assert_close(fused, masked, rtol=1e-5, atol=1e-6)
    padded = collate(load_dataset(data.config()), np.arange(6), max_asvs=64, categories=np.zeros((40, 0), dtype=np.int64), target=None)
    assert not padded.full_asvs and not padded.full_samples


def test_a_pass_encodes_each_unique_asv_once(data, monkeypatch):
    from aam_core.data.batching import pass_features
    from aam_core.model.asv_encoder import ASVEncoder
    from aam_core.training.passes import AsvTable
    from aam_plugins.parallel.single import SingleDeviceStrategy

    config, model = _model(data)
    dataset = load_dataset(data.config())
    encoded: list[int] = []
    patches = ASVEncoder.patches
    monkeypatch.setattr(ASVEncoder, "patches", lambda self, tokens, full=False: encoded.append(len(tokens)) or patches(self, tokens, full))
    rows = np.arange(len(dataset))
    with torch.no_grad():
        table = AsvTable.encode(model, dataset, rows, max_asvs=config.data.max_asvs, strategy=SingleDeviceStrategy(device="cpu"), bucket=False)
    assert sum(encoded) == len(pass_features(dataset, rows, config.data.max_asvs)) == table.table.shape[0]


def _every_loss(task, module, batch):
    loss, _ = task.loss(module, batch, 1, 1)
    loss.backward()
    return [name for name, p in module.named_parameters() if p.requires_grad and p.grad is None]


FUSIONS = [info.name for info in list_plugins("fusion") if info.distribution == "aam"]


@pytest.mark.parametrize(
    "options",
    [
        *({"categorical_columns": "site", "fusion": f} for f in FUSIONS),
        {"categorical_columns": "site", "neighbours": 2},
        {"count_prediction": True, "count_mask_ratio": 0.0},
        {"count_prediction": False, "unifrac_penalty": 0.5},
        {"task": "pretrain", "unifrac_penalty": 1.0, "nuc_penalty": 0.0},
        {"task": "pretrain", "unifrac_penalty": 0.0, "nuc_penalty": 1.0},
        {"task": "pretrain", "unifrac_penalty": 1.0, "nuc_penalty": 1.0},
    ],
    ids=[*FUSIONS, "neighbours", "count-head-never-hidden", "unifrac", "pretrain-unifrac", "pretrain-nucleotides", "pretrain-both"],
)
def test_every_trainable_parameter_gets_a_gradient(data, options):
    """DistributedDataParallel waits for a gradient of every trainable parameter at every step:
    no head, fusion or path may be built and then left out of the loss."""
    from aam_core.data.categories import CategoryEncoder
    from aam_core.targets import TargetEncoding
    from aam_core.training.pretrain import PretrainTask
    from aam_core.training.supervised import Split, SupervisedTask
    from aam_core.training.unifrac_source import distance_source
    from aam_plugins.parallel.single import SingleDeviceStrategy
    from aam_plugins.transforms.zscore import ZScoreTransform

    tree = {"tree": str(data.folder / "tree.nwk")} if options.get("unifrac_penalty") else {}
    config, model = _model(data, metadata=str(data.metadata), metadata_column="age", **tree, **options)
    dataset = load_dataset(config.data, target_required=config.task == "train")
    rows = np.arange(len(dataset))
    strategy = SingleDeviceStrategy(device="cpu")
    distances = distance_source(config.data, dataset) if tree else None
    if config.task == "pretrain":
        task = PretrainTask(config=config, model=model, dataset=dataset, train_rows=rows, val_rows=rows[:0], distances=distances, strategy=strategy)
    else:
        columns = config.data.categorical_columns
        codes = CategoryEncoder.fit(dataset, columns).encode(dataset) if columns else np.zeros((len(dataset), 0), dtype=np.int64)
        encoding = TargetEncoding(None, ZScoreTransform().fit(dataset.target), None)
        summaries = None
        if model.neighbours:  # the gate and the head's own output each answer to a loss
            summaries = np.random.default_rng(0).random((len(dataset), 2, model.neighbours), dtype=np.float32)
        task = SupervisedTask(
            config=config, model=model, dataset=dataset, split=Split(train=rows, val=rows[:0]), codes=codes,
            encoding=encoding, strategy=strategy, distances=distances, neighbours=summaries,
        )  # fmt: skip
    batch = task.build(BatchKey(epoch=1, index=1, rows=rows[:8], group=rows[:8], training=True))
    model.train()
    assert _every_loss(task, model, batch) == []


def test_dp_split_and_merge_reproduce_the_whole_batch(data):
    """``dp`` runs each part on its own GPU; here both parts run on the CPU."""
    from aam_core.data.categories import CategoryEncoder
    from aam_core.training import augment
    from aam_plugins.parallel.data_parallel import merge_outputs, split_batch

    _, model = _model(data, categorical_columns="site", fusion="cross-attention", nuc_penalty=1.0, task="pretrain")
    model.eval()
    dataset = load_dataset(data.config(categorical_columns=["site"]))
    codes = CategoryEncoder.fit(dataset, ["site"]).encode(dataset)
    batch = collate(dataset, np.arange(9), max_asvs=16, categories=codes, target=None, bucket=True)
    batch = augment.mask_patches(batch, 4, 0.2, np.random.default_rng(0))
    summaries = torch.arange(9.0)[:, None, None].expand(9, 2, 4).contiguous()  # row r: all r
    batch = attrs.evolve(batch, unknown_target=torch.arange(9.0) * 10, neighbours=summaries)  # rows 0..8: value = 10·row
    parts = split_batch(batch, 2)
    assert sorted(np.concatenate([p.rows for p, _ in parts]).tolist()) == list(range(9))
    for part, _ in parts:  # each part keeps its own samples' unknown-branch targets and summaries
        assert torch.equal(part.unknown_target, torch.as_tensor(part.rows * 10.0, dtype=torch.float32))
        assert torch.equal(part.neighbours, summaries[torch.as_tensor(part.rows)])
    assert all(p.asv_tokens.shape[0] < batch.asv_tokens.shape[0] for p, _ in parts)  # each its own ASVs
    with torch.no_grad():
        whole = model(batch)
        merged = merge_outputs([model(p) for p, _ in parts], [u for _, u in parts], batch.asv_tokens.shape[0], torch.device("cpu"))
    torch.testing.assert_close(merged.embedding, whole.embedding, rtol=1e-5, atol=1e-6)
    for key in whole.extras:
        torch.testing.assert_close(merged.extras[key], whole.extras[key], rtol=1e-5, atol=1e-6)
    used = torch.unique(batch.asv_index[batch.mask])
    torch.testing.assert_close(merged.nucleotides[used], whole.nucleotides[used], rtol=1e-5, atol=1e-6)


def test_dp_merge_keeps_every_target_output(data):
    """A supervised batch on the unknown branch with reference summaries: the merged parts give
    the whole batch's prediction, unknown-category prediction, the heads' own outputs and the
    category logits (the training loss reads all of them)."""
    from aam_core.data.categories import CategoryEncoder
    from aam_plugins.parallel.data_parallel import merge_outputs, split_batch

    _, model = _model(data, metadata=str(data.metadata), metadata_column="age", categorical_columns="site", neighbours=2)
    model.eval()
    dataset = load_dataset(data.config(categorical_columns=["site"]))
    codes = CategoryEncoder.fit(dataset, ["site"]).encode(dataset)
    batch = collate(dataset, np.arange(9), max_asvs=16, categories=codes, target=np.arange(len(dataset), dtype=np.float32), bucket=True)
    summaries = torch.rand(9, 2, model.neighbours, generator=torch.Generator().manual_seed(0))
    batch = attrs.evolve(batch, unknown_branch=True, neighbours=summaries)
    parts = split_batch(batch, 2)
    with torch.no_grad():
        whole = model(batch)
        merged = merge_outputs([model(p) for p, _ in parts], [u for _, u in parts], batch.asv_tokens.shape[0], torch.device("cpu"))
    order = torch.as_tensor(np.concatenate([p.rows for p, _ in parts]))
    for key in ("prediction", "unknown_prediction", "own_prediction", "unknown_own"):
        assert getattr(whole, key) is not None, key
        torch.testing.assert_close(getattr(merged, key), getattr(whole, key)[order], rtol=1e-5, atol=1e-6)
    assert len(merged.category_logits) == len(whole.category_logits) == 1
    torch.testing.assert_close(merged.category_logits[0], whole.category_logits[0][order], rtol=1e-5, atol=1e-6)


# -- CUDA only -------------------------------------------------------------------------------------
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("parallel", ["single", "dp"])
def test_cuda_run_with_bf16_writes_fp32_validation_equal_to_predict(data, tmp_path, parallel):
    from aam_core import train

    out = tmp_path / "run"
    train(table=data.table, metadata=data.metadata, metadata_column="age", **TINY, epochs=1, parallel=parallel, amp=True, output_dir=out)
    frame = pd.read_csv(out / "val_predictions.tsv", sep="\t", dtype={"sample_id": str})
    alone = predict(out / "checkpoints" / "best.pt", data.table, metadata=data.metadata)
    merged = frame.merge(alone, on="sample_id", suffixes=("", "_alone"))
    np.testing.assert_allclose(merged["predicted"], merged["predicted_alone"], rtol=1e-5)
