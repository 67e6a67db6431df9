"""How fast ``aam explain`` is and how far its answers can be trusted, on oral-age; prints JSON.

For each method (occlusion, integrated-gradients, attention) on the same explained samples:
seconds and samples/s (compute only: the model and table are loaded once, outside the timing),
the deletion-curve faithfulness (area between the top-k and random-k curves, in years, and the
share of samples whose top-k curve beats random), the integrated-gradients completeness error,
and the Spearman rank agreement of each method's global importance with the random forest's
impurity importance (fitted on the run's training samples) and between methods.

Without ``--model`` a small model is trained first (D=64, 4 heads, 1 + 2 layers, max-asvs 128,
max-bp 100, gmu fusion with the study as a categorical input, batch 32, ``--epochs`` 8: a few
minutes on two cores). The explained samples are the first ``--samples`` of the run's
``train_samples.txt`` (the forest is fitted on all of them), else of the table.

    python bench/explain.py                                  # train, then measure 500 samples
    python bench/explain.py --model runs/x/checkpoints/best.pt --samples 200 --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"
SMALL_MODEL = {
    "categorical_columns": ["qiita_study_id"],
    "fusion": "gmu",
    "embedding_dim": 64,
    "attention_heads": 4,
    "attention_layers": 2,
    "asv_layers": 1,
    "max_asvs": 128,
    "max_bp": 100,
    "batch_size": 32,
    "target_loss": "huber",
}


def train_small(folder: Path, epochs: int) -> Path:
    import aam_core

    aam_core.train(
        table=DATA / "table.biom",
        metadata=DATA / "metadata.tsv",
        metadata_column="age",
        output_dir=folder,
        epochs=epochs,
        **SMALL_MODEL,
    )
    return folder / "checkpoints" / "best.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Checkpoint to explain [default: train one].")
    parser.add_argument("--samples", type=int, default=500, help="Samples to explain.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and forest jobs).")
    parser.add_argument(
        "--epochs", type=int, default=8, help="Epochs of the model trained without --model."
    )
    parser.add_argument(
        "--steps", type=int, default=32, help="Integrated-gradients quadrature points."
    )
    parser.add_argument(
        "--no-forest", action="store_true", help="Skip the random-forest agreement."
    )
    args = parser.parse_args()

    import numpy as np
    import torch

    from aam_core.attribution import compute, get_method
    from aam_core.attribution.agreement import forest_importance, spearman
    from aam_core.attribution.data import load_explain_data
    from aam_core.attribution.faithfulness import deletion_curves
    from aam_core.attribution.figures import feature_label
    from aam_core.data.samples import read_sample_list

    torch.set_num_threads(args.threads)
    report: dict = {"threads": args.threads, "device": "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.model
        if checkpoint is None:
            started = time.perf_counter()
            checkpoint = train_small(Path(tmp) / "run", args.epochs)
            report["train_seconds"] = round(time.perf_counter() - started, 1)
        split = checkpoint.parent.parent / "train_samples.txt"
        training = read_sample_list(split) if split.is_file() else None

        started = time.perf_counter()
        data = load_explain_data(
            checkpoint, DATA / "table.biom", metadata=DATA / "metadata.tsv", device="cpu"
        )
        chosen = training[: args.samples] if training else list(data.sample_ids[: args.samples])
        data = load_explain_data(
            data.loaded, DATA / "table.biom", metadata=DATA / "metadata.tsv", samples=chosen
        )
        report["load_seconds"] = round(time.perf_counter() - started, 1)
        report["samples"] = len(data.rows)
        report["explained"] = "training samples" if training else "first samples of the table"
        report["model"] = {
            "max_asvs": data.loaded.config.data.max_asvs,
            "fusion": data.loaded.config.model.fusion,
        }

        importances, methods = {}, {}
        for name in ("occlusion", "integrated-gradients", "attention"):
            started = time.perf_counter()
            explanation = compute(data, get_method(name), steps=args.steps, progress=False)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            curves = deletion_curves(data, explanation)
            entry = {
                "seconds": round(seconds, 1),
                "samples_per_s": round(len(explanation) / seconds, 2),
                "faithfulness": {
                    "area_between_years": round(curves["area_between"], 3),
                    "wins": round(curves["wins"], 3),
                    "area_vs_abundance_years": round(curves["area_vs_abundance"], 3),
                    "abundance_area_between_years": round(curves["abundance_area_between"], 3),
                    "top_k_change_at_1_5_20": [
                        round(curves["top_k_change"][k], 3) for k in (0, 4, 19)
                    ],
                    "random_k_change_at_1_5_20": [
                        round(curves["random_k_change"][k], 3) for k in (0, 4, 19)
                    ],
                    "seconds": round(time.perf_counter() - started, 1),
                },
            }
            if explanation.kind != "attention":
                residual = np.abs(explanation.residual())
                entry["abs_residual_mean_years"] = round(float(residual.mean()), 4)
            importance = explanation.importance()
            position = {str(f): i for i, f in enumerate(explanation.feature_ids)}
            entry["top5"] = [
                feature_label(explanation.taxonomy[position[f]], f) for f in importance.index[:5]
            ]
            importances[name] = importance
            methods[name] = entry
        report["methods"] = methods
        report["agreement_between_methods"] = {
            f"{a} vs {b}": round(spearman(importances[a], importances[b]), 3)
            for a, b in itertools.combinations(importances, 2)
        }
        if not args.no_forest and training:
            started = time.perf_counter()
            forest = forest_importance(
                DATA / "table.biom", DATA / "metadata.tsv", "age", training,
                options={"n_jobs": args.threads},
            )  # fmt: skip
            report["forest"] = {
                "fitted_on": len(training),
                "seconds": round(time.perf_counter() - started, 1),
                "spearman": {
                    name: round(spearman(imp, forest), 3) for name, imp in importances.items()
                },
                "spearman_top100_union": {
                    name: round(spearman(imp.iloc[:100], forest.iloc[:100]), 3)
                    for name, imp in importances.items()
                },
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
