"""Training or pretraining throughput on the full oral-age table through the real Trainer; prints JSON.

The benchmark configuration (D=128, 4 heads, 4 ASV-encoder + 4 sample-encoder layers, max-asvs
256, max-bp 100), any parallel strategy: ``single`` and ``dp`` in one process, ``ddp`` and
``fsdp`` under torchrun (started here with ``--nproc``). ``--task train`` (the default) regresses
age; ``--task pretrain`` runs the task ``aam pretrain`` runs: unweighted UniFrac distances
computed per batch from the table's tree (``tree.nwk``) plus the masked-nucleotide loss, no
metadata. Each batch size runs in its own process(es), two epochs of ``--max-batches`` steps per
process: the first warms up (allocator, kernels for each bucketed shape, DataLoader workers), the
second is measured. Reported per batch size: samples/s of all processes together, seconds a full
epoch of the table would take, peak memory (RSS; and allocated GPU memory on CUDA) of the largest
process, and the unique ASVs a batch holds against the B·S slots a padded layout would encode.

    python bench/train_throughput.py                                # single, batch 8 and 32
    python bench/train_throughput.py --task pretrain                # UniFrac + masked nucleotides
    python bench/train_throughput.py --parallel ddp --nproc 2 --device cpu
    python bench/train_throughput.py --batch-sizes 8,32,128 --amp  # on a GPU: bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"
BASELINE = {"samples_per_s_batch8": 0.45, "peak_rss_gb": 5.9, "padding_fraction": 0.79}


def measure(args: argparse.Namespace) -> dict | None:
    """One batch size in this process (one of several under torchrun); the JSON on rank 0."""
    import numpy as np
    import torch

    from aam_core.config import PRETRAIN_PENALTIES
    from aam_core.data.batching import collate, default_workers
    from aam_core.data.dataset import load_dataset
    from aam_core.model.aam import AAMModel
    from aam_core.model.build import build_model
    from aam_core.options import build_config
    from aam_core.targets import TargetEncoding
    from aam_core.training.loop import Trainer
    from aam_core.training.pretrain import PretrainTask
    from aam_core.training.run import make_strategy
    from aam_core.training.supervised import Split, SupervisedTask
    from aam_core.training.unifrac_source import distance_source
    from aam_plugins.transforms.zscore import ZScoreTransform

    batch = args.one
    pretraining = args.task == "pretrain"
    if pretraining:  # as `aam pretrain --tree`: both losses at their default weights, no metadata
        task_options = {"tree": args.data / "tree.nwk", "unifrac_metric": "unweighted", **PRETRAIN_PENALTIES}
    else:
        task_options = {"metadata": args.data / "metadata.tsv", "metadata_column": "age"}
    config = build_config(
        task=args.task, table=args.data / "table.biom", max_asvs=256, max_bp=100,
        embedding_dim=128, attention_heads=4, attention_layers=4, asv_layers=4, patch_size=args.patch_size,
        batch_size=batch, epochs=2, parallel=args.parallel, device=args.device, amp=args.amp,
        loader_workers=args.workers, warmup_fraction=0.0, patience=0, **task_options,
    )  # fmt: skip
    strategy = make_strategy(config.training)
    world = strategy.world_size
    dataset = load_dataset(config.data, target_required=not pretraining, keep_all=False)
    rows = np.random.default_rng(0).permutation(len(dataset))
    n_train = min(len(rows) - batch, args.max_batches * batch * world)
    train_rows, val_rows = rows[:n_train], rows[n_train : n_train + batch]
    codes = np.zeros((len(dataset), 0), dtype=np.int64)
    torch.manual_seed(0)
    model = build_model(config, out_dim=None if pretraining else 1, category_sizes=[], scaling=None).to(strategy.root_device)
    if pretraining:
        distances = distance_source(config.data, dataset)
        task = PretrainTask(
            config=config, model=model, dataset=dataset, train_rows=train_rows, val_rows=val_rows, distances=distances, strategy=strategy
        )
    else:
        encoding = TargetEncoding(None, ZScoreTransform().fit(dataset.target[train_rows]), None)
        split = Split(train=train_rows, val=val_rows)
        task = SupervisedTask(config=config, model=model, dataset=dataset, split=split, codes=codes, encoding=encoding, strategy=strategy)
    trainer = Trainer(model, task, config.training, strategy, conditioning=AAMModel.conditioning_parameters)
    cuda = strategy.root_device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = trainer.fit(on_epoch=lambda *_: None, save=lambda _: None)
    measured = result.history[-1]
    rss = strategy.all_reduce(torch.tensor(float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)), "max")
    gpu = strategy.all_reduce(torch.tensor(float(torch.cuda.max_memory_allocated()), device=strategy.root_device), "max") if cuda else None
    strategy.teardown()
    if not strategy.is_global_zero:
        return None
    unique, slots = [], []
    for start in range(0, min(n_train, 40 * batch), batch):
        built = collate(dataset, train_rows[start : start + batch], max_asvs=256, categories=codes, target=None)
        unique.append(built.asv_tokens.shape[0])
        slots.append(int(built.mask.sum()))
    speed = measured["speed/samples_per_s"]
    return {
        "task": args.task,
        "parallel": args.parallel,
        "processes": world,
        "device": str(strategy.root_device.type),
        "amp_bf16": bool(args.amp and cuda),
        "batch_per_process": batch,
        "global_batch": batch * world,
        "loader_workers": default_workers(strategy.root_device) if args.workers is None else args.workers,
        "steps_timed": task.n_train_batches(),
        "samples_per_s": round(speed, 2),
        "seconds_per_full_epoch": round(len(dataset) / speed, 1),
        "peak_rss_gb": round(float(rss) / 2**20, 3),
        "peak_gpu_memory_gb": None if gpu is None else round(float(gpu) / 2**30, 3),
        "mean_unique_asvs_per_batch": round(float(np.mean(unique)), 1),
        "mean_asv_slots_per_batch": round(float(np.mean(slots)), 1),
        "padded_slots_per_batch": batch * 256,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="train", choices=["train", "pretrain"], help="what is trained (pretrain: as 'aam pretrain')")
    parser.add_argument("--parallel", default="single", help="single, dp, ddp, fsdp or any installed strategy")
    parser.add_argument("--nproc", type=int, default=1, help="processes for ddp/fsdp (torchrun)")
    parser.add_argument("--batch-sizes", default="8,32", help="per process")
    parser.add_argument("--max-batches", type=int, default=20, help="steps per process per epoch")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA only)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers", type=int, default=None, help="--loader-workers")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        found = measure(args)
        if found is not None:
            print(json.dumps(found))
        return
    results = []
    for size in (int(s) for s in args.batch_sizes.split(",")):
        launch = [sys.executable]
        if args.parallel in ("ddp", "fsdp"):
            launch += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc)]
        cmd = [*launch, __file__, "--one", str(size), "--parallel", args.parallel, "--max-batches", str(args.max_batches)]
        cmd += ["--task", args.task, "--patch-size", str(args.patch_size), "--data", str(args.data)]
        cmd += ["--amp"] if args.amp else []
        cmd += ["--device", args.device] if args.device else []
        cmd += ["--workers", str(args.workers)] if args.workers is not None else []
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if done.returncode != 0:
            sys.exit(f"batch {size} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary: dict = {"task": args.task, "runs": results}
    by_size = {r["batch_per_process"]: r for r in results}
    if args.task == "train":  # the baseline system was measured training
        summary["baseline_system"] = BASELINE
        if 8 in by_size and by_size[8]["device"] == "cpu":
            summary["speedup_vs_baseline_batch8"] = round(by_size[8]["samples_per_s"] / BASELINE["samples_per_s_batch8"], 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
