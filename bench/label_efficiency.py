"""Does pretraining save labels? Fine-tune from a pretrained encoder on a fraction of the labelled
training samples, against the same model from scratch and a random forest on the same samples.

Every model selects on the same validation samples and is scored on a test set that neither the
pretraining (run it on a table without those samples) nor any selection has seen.

    python bench/label_efficiency.py --pretrained runs/pretrain/checkpoints/best.pt \\
        --train-samples train.txt --val-samples val.txt --test-samples test.txt \\
        --output-dir runs/label-efficiency [--fractions 0.1 0.25] [--config FILE]

Prints JSON: test (and validation) MAE per fraction for scratch, pretrained (fine-tuned),
pretrained with the ASV encoder frozen, and the forest — fitted on the same labelled samples,
and on those plus the validation samples AAM selects on (it has no selection of its own);
seconds and training samples/s per run (the frozen encoder's cache is the speed-up).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from aam_core import run_baseline, train
from aam_core.training.metrics import regression_metrics

HERE = Path(__file__).resolve().parent
ORAL = HERE.parents[1] / "shared" / "data" / "oral-age"
#: The encoder's architecture must match the pretrained checkpoint's.
ENCODER = ("embedding_dim", "attention_heads", "attention_layers", "asv_layers", "patch_size", "feedforward_mult", "max_bp")


def _ids(path: str) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--table", default=str(ORAL / "table.biom"))
    parser.add_argument("--metadata", default=str(ORAL / "metadata.tsv"))
    parser.add_argument("--column", default="age")
    parser.add_argument("--train-samples", required=True)
    parser.add_argument("--val-samples", required=True)
    parser.add_argument("--test-samples", required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args()

    import torch

    stored = torch.load(args.pretrained, map_location="cpu", weights_only=True)["config"]
    architecture = {k: v for section in ("model", "data") for k, v in stored[section].items() if k in ENCODER}
    out = Path(args.output_dir)
    train_ids, val_ids, test_ids = _ids(args.train_samples), _ids(args.val_samples), _ids(args.test_samples)
    order = np.random.default_rng(args.seed).permutation(train_ids)
    common = dict(
        table=args.table, metadata=args.metadata, metadata_column=args.column, val_samples=val_ids, test_samples=test_ids,
        epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, target_loss="huber", max_asvs=stored["data"]["max_asvs"],
        count_prediction=False, categorical_columns=[], force=True, **architecture,
    )  # fmt: skip
    variants = {
        "scratch": {},
        "pretrained": {"pretrained_encoder": args.pretrained},
        "pretrained, ASV encoder frozen": {"pretrained_encoder": args.pretrained, "freeze_base": True},
    }
    result = {"pretrained": args.pretrained, "config": {k: v for k, v in common.items() if k not in ("val_samples", "test_samples")}, "fractions": {}}
    for fraction in args.fractions:
        subset = [str(s) for s in order[: int(round(fraction * len(order)))]]
        entry = {"n_train": len(subset), "n_val": len(val_ids), "n_test": len(test_ids)}
        for name, extra in variants.items():
            started = time.perf_counter()
            run = train(output_dir=out / f"{fraction:g}" / name.split(",")[0].replace(" ", "-") / ("frozen" if "freeze_base" in extra else "run"),
                        train_samples=subset, **common, **extra)
            seconds = time.perf_counter() - started
            test = run.test_predictions
            entry[name] = {
                "test_mae": regression_metrics(test["actual"], test["predicted"])["mae"],
                "val_mae": run.metrics["val"]["mae"],
                "best_epoch": run.best_epoch,
                "seconds": seconds,
                "train_samples_per_s": float(np.mean([h["speed/samples_per_s"] for h in run.metrics["history"]])),
            }
        data = dict(table=args.table, metadata=args.metadata, metadata_column=args.column)
        same = run_baseline("random-forest", **data, train_samples=subset, val_samples=test_ids, output=out / f"{fraction:g}" / "rf-same.tsv")
        entry["random forest (the same labelled samples)"] = {"test_mae": same.metrics["mae"]}
        more = run_baseline(
            "random-forest", **data, train_samples=subset, val_samples=val_ids, test_samples=test_ids,
            output=out / f"{fraction:g}" / "rf-with-val.tsv",
        )  # fmt: skip
        entry["random forest (fits them + the validation samples)"] = {"test_mae": more.metrics["mae"]}
        result["fractions"][f"{fraction:g}"] = entry
    (out / "label_efficiency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
