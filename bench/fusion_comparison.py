"""Per-fusion training throughput and validation MAE on oral-age; prints JSON.

Each fusion trains on the same split with ``--categorical-columns qiita_study_id``; throughput is
reported relative to ``concat`` from the same run. A second part times each fusion module alone
on growing numbers of ASVs (S) to show how its cost scales (the perceiver's is linear in S).

    python bench/fusion_comparison.py                 # 3 epochs per fusion
    python bench/fusion_comparison.py --epochs 1 --fusions concat,perceiver
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"
BUILTIN = "concat,add,gmu,cross-attention,perceiver"


def train_each(fusions: list[str], epochs: int, options: dict) -> dict:
    import aam_core

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in fusions:
            started = time.perf_counter()
            result = aam_core.train(
                table=str(DATA / "table.biom"),
                metadata=str(DATA / "metadata.tsv"),
                metadata_column="age",
                categorical_columns=["qiita_study_id"],
                fusion=name,
                epochs=epochs,
                output_dir=str(Path(tmp) / name),
                **options,
            )
            speeds = [h["speed/samples_per_s"] for h in result.metrics["history"]]
            runs[name] = {
                "train_samples_per_s": round(sum(speeds) / len(speeds), 2),
                "val_mae": round(result.metrics["val"]["mae"], 3),
                "val_r2": round(result.metrics["val"]["r2"], 3),
                "best_epoch": result.best_epoch,
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
    if "concat" in runs:
        for run in runs.values():
            run["throughput_vs_concat"] = round(
                run["train_samples_per_s"] / runs["concat"]["train_samples_per_s"], 3
            )
    return runs


def scaling(fusions: list[str], dim: int = 64, sizes=(64, 256, 1024), repeats: int = 5) -> dict:
    """Forward FLOPs (exact, counted) and forward+backward milliseconds (noisy on a shared
    machine) of each fusion module alone as S grows (B=8, K=2)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from aam_core.plugins import get_plugin

    torch.manual_seed(0)
    out = {}
    for name in fusions:
        spec = get_plugin("fusion", name)
        fusion = spec.factory(dim=dim, n_columns=2, options=spec.make_options({}))
        times, flops = {}, {}
        for s in sizes:
            asv = torch.randn(8, s, dim, requires_grad=True)
            mask = torch.ones(8, s, dtype=torch.bool)
            cat = torch.randn(8, 2, dim)

            def pool(h, m):
                return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)

            fusion(asv, mask, cat, pool).pooled.sum().backward()
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
                fusion(asv, mask, cat, pool)
            flops[str(s)] = counter.get_total_flops()
            start = time.perf_counter()
            for _ in range(repeats):
                fusion(asv, mask, cat, pool).pooled.sum().backward()
            times[str(s)] = round((time.perf_counter() - start) / repeats * 1000, 3)
        lo, hi = str(sizes[0]), str(sizes[-1])
        out[name] = {
            "forward_flops_by_S": flops,
            f"flops_ratio_S{hi}_vs_S{lo}": round(flops[hi] / flops[lo], 2) if flops[lo] else None,
            "ms_by_S": times,
            f"ms_ratio_S{hi}_vs_S{lo}": round(times[hi] / times[lo], 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", default=BUILTIN)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--attention-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fusions = [f.strip() for f in args.fusions.split(",") if f.strip()]
    options = {
        "embedding_dim": args.embedding_dim,
        "attention_layers": args.attention_layers,
        "batch_size": args.batch_size,
        "max_bp": 100,
        "lr": 1e-3,
        "seed": 42,
        "patience": 0,
    }
    report = {"config": {**options, "epochs": args.epochs}, "module_scaling": scaling(fusions)}
    if not args.skip_training:
        report["training"] = train_each(fusions, args.epochs, options)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
