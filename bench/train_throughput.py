"""Training throughput on the full oral-age table; prints JSON.

Measures, per batch size, in the issue's configuration (D=128, 4 heads, 4 ASV-encoder + 4
sample-encoder layers, max-asvs 256, max-bp 100): steady-state and whole-epoch training
samples/second, seconds per epoch, peak RSS, and the mean number of unique ASVs per batch
against the B·S slots a padded layout would encode. Each batch size runs in its own process so
peak RSS is its own.

    python bench/train_throughput.py                  # batch 8 and 32, one full epoch each
    python bench/train_throughput.py --max-batches 40 # quicker: epoch time extrapolated
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"
BASELINE = {"samples_per_s_batch8": 0.45, "peak_rss_gb": 5.9, "padding_fraction": 0.79}


def measure(batch_size: int, max_batches: int | None, patch_size: int, warmup: int = 3) -> dict:
    import numpy as np
    import torch

    from aam_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from aam_core.data.batching import iter_batches
    from aam_core.data.dataset import load_dataset
    from aam_core.model.build import build_model
    from aam_core.training.schedule import make_optimizer
    from aam_core.training.supervised import SupervisedTask, TargetEncoding
    from aam_plugins.transforms.zscore import ZScoreTransform

    torch.manual_seed(0)
    config = RunConfig(
        data=DataConfig(
            table=str(DATA / "table.biom"),
            metadata=str(DATA / "metadata.tsv"),
            metadata_column="age",
            max_asvs=256,
            max_bp=100,
        ),
        model=ModelConfig(
            embedding_dim=128, attention_heads=4, attention_layers=4, asv_layers=4, patch_size=patch_size
        ),
        training=TrainConfig(batch_size=batch_size),
    )
    dataset = load_dataset(config.data)
    rows = np.arange(len(dataset))
    transform = ZScoreTransform().fit(dataset.target)
    encoding = TargetEncoding(classes=None, transform=transform, transform_categories=None)
    model = build_model(config, out_dim=1, category_sizes=[], scaling=None)
    codes = np.zeros((len(dataset), 0), dtype=np.int64)
    task = SupervisedTask(
        model=model, dataset=dataset, train_rows=rows, val_rows=rows[:0], codes=codes,
        encoding=encoding, batch_size=batch_size, max_asvs=256, seed=0, target_loss="mse",
        count_loss_weight=1.0, column_names=[], bucket=False, device=torch.device("cpu"),
    )
    optimizer = make_optimizer(model, 3e-4, 0.01, [], None)
    model.train()

    unique, slots, padded = [], [], []
    for batch in iter_batches(dataset, rows, batch_size, max_asvs=256, categories=codes, target=None):
        unique.append(batch.asv_tokens.shape[0])
        slots.append(int(batch.mask.sum()))
        padded.append(batch.size * 256)

    times, n_done = [], 0
    epoch_start = time.perf_counter()
    for i, batch in enumerate(task.train_batches(epoch=1)):
        if max_batches is not None and i >= max_batches:
            break
        t0 = time.perf_counter()
        loss, _ = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append((time.perf_counter() - t0, batch.size))
        n_done += batch.size
    wall = time.perf_counter() - epoch_start
    steady = times[warmup:]
    steady_rate = sum(n for _, n in steady) / sum(t for t, _ in steady)
    epoch_rate = n_done / wall
    return {
        "batch_size": batch_size,
        "patch_size": patch_size,
        "samples": len(dataset),
        "batches_timed": len(times),
        "full_epoch": max_batches is None,
        "steady_samples_per_s": round(steady_rate, 2),
        "epoch_samples_per_s": round(epoch_rate, 2),
        "seconds_per_epoch": round(len(dataset) / epoch_rate, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "mean_unique_asvs_per_batch": round(float(np.mean(unique)), 1),
        "mean_asv_slots_per_batch": round(float(np.mean(slots)), 1),
        "padded_slots_per_batch": round(float(np.mean(padded)), 1),
        "encoded_vs_padded": round(float(np.mean(unique) / np.mean(padded)), 4),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--max-batches", type=int, default=None, help="Time only this many batches.")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.max_batches, args.patch_size)))
        return
    results = []
    for size in (int(s) for s in args.batch_sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(size), "--patch-size", str(args.patch_size)]
        if args.max_batches:
            cmd += ["--max-batches", str(args.max_batches)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    by_size = {r["batch_size"]: r for r in results}
    summary = {"baseline_system": BASELINE, "runs": results}
    if 8 in by_size:
        summary["speedup_vs_baseline_batch8"] = round(
            by_size[8]["epoch_samples_per_s"] / BASELINE["samples_per_s_batch8"], 1
        )
        summary["rss_fraction_of_baseline"] = round(by_size[8]["peak_rss_gb"] / BASELINE["peak_rss_gb"], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
