"""Where does AAM's accuracy on oral-age come from? Nested k-fold CV of every variant on the
same folds, scored only on held-out samples (selection on each fold's inner validation split).

Variants: AAM (the recipe in ``examples/oral-age-recommended.json``, which reads each sample's 3
nearest training samples with ``--neighbours 3``) with and without the study column, AAM trained
with the study but predicting each held-out sample with its study hidden (no metadata, as for a
sample from a new study), the random
forest plugin with and without a one-hot study column — at its default (``--max-features oob``:
chosen by out-of-bag error on the samples it fits) and at ``sqrt`` (the old default, which left
the yardstick handicapped) — and study-mean and study-median predictors (each study's mean or
median age in the training fold). For
each: pooled MAE/RMSE/R², per-fold MAE, and MAE within qiita study 10317 (the largest study with
a wide age range, where the study label says nothing about age). Every other variant is also
compared with AAM (study as input) on the same samples, pooled, within 10317 and within each
fold: the difference of MAEs (positive: AAM ahead) with a 95% interval from a paired bootstrap
over the samples.

    python bench/accuracy_sources.py --output-dir runs/accuracy [--folds 5] [--config FILE] [--keep-finished]

``--keep-finished`` reuses a cross-validation already finished in --output-dir (its pooled
predictions) and each forest fold already written there (``forests/<variant>/fold-k.tsv`` with
the ``fold-k.json`` that records its --max-features) instead of running them again: after a
change that can only affect one variant, copy the others' folders from an earlier run into
--output-dir and rerun the one.

Prints JSON; also writes accuracy.json and accuracy.md (the README's two tables) to --output-dir, and
each forest's predictions and plot per fold under forests/ (the forests are ``run_baseline``, the
code behind ``aam baseline``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam_core import cross_validate, predict, run_baseline
from aam_core.config import DataConfig
from aam_core.data.dataset import load_dataset
from aam_core.training.metrics import regression_metrics

HERE = Path(__file__).resolve().parent
ORAL = HERE.parents[1] / "shared" / "data" / "oral-age"
STUDY, WIDE = "qiita_study_id", "10317"


def _forest(out: Path, args, folds: pd.DataFrame, k: int, columns: list[str], max_features: str) -> pd.DataFrame:
    """``aam baseline random-forest`` (:func:`run_baseline`) on fold k: fitted on its inner
    training and validation samples (relative abundances, plus one indicator per study with
    ``columns``), scored on its held-out samples. With ``oob`` (the plugin's default) it picks
    --max-features by out-of-bag error on the samples it fits, so the held-out fold never takes
    part in the choice."""
    role = folds.set_index("sample_id")[f"role_{k}"]
    name = f"{'study' if columns else 'abundances'}-{max_features}"
    written, choice = out / "forests" / name / f"fold-{k}.tsv", out / "forests" / name / f"fold-{k}.json"
    if args.keep_finished and written.exists() and choice.exists():  # a forest is a pure function of its fold
        kept = json.loads(choice.read_text())["max_features"]
        return pd.read_csv(written, sep="\t", dtype={"sample_id": str}).assign(fold=k, max_features=kept)
    result = run_baseline(
        "random-forest", table=args.table, metadata=args.metadata, metadata_column="age",
        train_samples=role.index[role.isin(["train", "val"])].tolist(), test_samples=role.index[role == "test"].tolist(),
        output=out / "forests" / name / f"fold-{k}.tsv", categorical_columns=columns,
        options={"random_seed": args.seed, "max_features": max_features},
    )  # fmt: skip
    choice.write_text(json.dumps({"max_features": result.model.max_features}) + "\n")
    return result.predictions.assign(fold=k, max_features=result.model.max_features)


def _study_hidden(out: Path, data, folds: pd.DataFrame, k: int, table: str) -> pd.DataFrame:
    """Fold k's AAM model (trained with the study) on its held-out samples, without metadata:
    every category unknown, as for samples from a study it never saw."""
    test = folds.loc[folds[f"role_{k}"] == "test", "sample_id"].tolist()
    frame = predict(out / "with-study" / f"fold-{k}" / "aam" / "checkpoints" / "best.pt", table)
    frame = frame.assign(sample_id=frame["sample_id"].astype(str)).set_index("sample_id").loc[test]
    actual = pd.Series(data.target, index=data.sample_ids).loc[test].to_numpy()
    return pd.DataFrame({"sample_id": test, "actual": actual, "predicted": frame["predicted"].to_numpy(), "fold": k})


def _study_average(data, study: np.ndarray, folds: pd.DataFrame, k: int, how: str) -> pd.DataFrame:
    """Each held-out sample predicted by its study's mean or median age in the training fold
    (the median minimises absolute error, the mean squared error)."""
    role = folds.set_index("sample_id")[f"role_{k}"].reindex(data.sample_ids).to_numpy()
    fit, test = np.isin(role, ["train", "val"]), role == "test"
    averages = pd.Series(data.target[fit]).groupby(study[fit]).agg(how)
    fallback = float(getattr(np, how)(data.target[fit]))
    predicted = pd.Series(study[test]).map(averages).fillna(fallback).to_numpy()
    return pd.DataFrame({"sample_id": data.sample_ids[test], "actual": data.target[test], "predicted": predicted, "fold": k})


def _summary(frame: pd.DataFrame, study: pd.Series) -> dict:
    frame = frame.reset_index(drop=True)
    errors = (frame["predicted"] - frame["actual"]).abs()
    pooled = regression_metrics(frame["actual"], frame["predicted"])
    per_fold = [regression_metrics(f["actual"], f["predicted"])["mae"] for _, f in frame.groupby("fold")]
    wide = frame[study.loc[frame["sample_id"]].to_numpy() == WIDE]
    return {
        "pooled": pooled,
        "fold_mae": per_fold,
        "mae_mean_sd": [float(np.mean(per_fold)), float(np.std(per_fold, ddof=1))],
        f"mae_{WIDE}": regression_metrics(wide["actual"], wide["predicted"])["mae"],
        f"r2_{WIDE}": regression_metrics(wide["actual"], wide["predicted"])["r2"],
        # study → [samples, MAE, share of the pooled MAE]: where the pooled error comes from
        "per_study": {
            str(name): [len(part), float(errors.loc[part.index].mean()), float(errors.loc[part.index].sum() / len(frame))]
            for name, part in frame.groupby(study.loc[frame["sample_id"]].to_numpy())
        },
    }


def _paired(frame: pd.DataFrame, reference: pd.DataFrame, keep: pd.Series | None, seed: int, draws: int = 2000) -> dict:
    """MAE of ``frame`` minus MAE of ``reference`` on the same samples (those in ``keep``, or
    all), with a 95% interval from resampling the samples (paired: one draw serves both)."""
    joined = frame.set_index("sample_id")[["actual", "predicted"]].join(reference.set_index("sample_id")["predicted"].rename("reference"))
    if keep is not None:
        joined = joined[keep.loc[joined.index].to_numpy()]
    gap = (joined["predicted"] - joined["actual"]).abs().to_numpy() - (joined["reference"] - joined["actual"]).abs().to_numpy()
    rng = np.random.default_rng(seed)
    means = gap[rng.integers(0, gap.size, size=(draws, gap.size))].mean(axis=1)
    return {"difference": float(gap.mean()), "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))], "n": int(gap.size)}


def _finished(out: Path) -> dict[str, pd.DataFrame]:
    """Model name → pooled held-out predictions of the cross-validation finished in ``out``."""
    return {path.stem.removeprefix("pooled_"): pd.read_csv(path, sep="\t", dtype={"sample_id": str}) for path in sorted(out.glob("pooled_*.tsv"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(ORAL / "table.biom"))
    parser.add_argument("--metadata", default=str(ORAL / "metadata.tsv"))
    parser.add_argument("--config", default=str(HERE.parent / "examples" / "oral-age-recommended.json"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--keep-finished", action="store_true", help="reuse a cross-validation already finished in --output-dir")
    args = parser.parse_args()
    out = Path(args.output_dir)
    common = dict(table=args.table, metadata=args.metadata, metadata_column="age", folds=args.folds, seed=args.seed, config=args.config, force=True)
    timings, predictions = {}, {}
    for name, columns in (("with-study", [STUDY]), ("without-study", [])):
        folder = out / name
        if args.keep_finished and (folder / "cv_metrics.json").exists():
            predictions[name] = _finished(folder)
            timings[f"aam_{name.replace('-', '_')}_cv_s"] = "reused"
            continue
        started = time.perf_counter()
        predictions[name] = cross_validate(output_dir=folder, categorical_columns=columns, baseline=None, **common).predictions
        timings[f"aam_{name.replace('-', '_')}_cv_s"] = time.perf_counter() - started

    data = load_dataset(DataConfig(table=args.table, metadata=args.metadata, metadata_column="age", categorical_columns=[STUDY]))
    study = data.column(STUDY)
    folds = pd.read_csv(out / "with-study" / "folds.tsv", sep="\t", dtype=str)
    started = time.perf_counter()
    forests = {
        (name, how): pd.concat([_forest(out, args, folds, k, columns, how) for k in range(1, args.folds + 1)])
        for name, columns in (("abundances", []), ("abundances + one-hot study", [STUDY]))
        for how in ("oob", "sqrt")
    }
    timings["forests_s"] = time.perf_counter() - started
    study_mean, study_median = (pd.concat([_study_average(data, study, folds, k, how) for k in range(1, args.folds + 1)]) for how in ("mean", "median"))
    hidden = pd.concat([_study_hidden(out, data, folds, k, args.table) for k in range(1, args.folds + 1)])
    by_id = pd.Series(study, index=data.sample_ids)
    variants = {
        "AAM, study as input": predictions["with-study"]["aam"],
        "AAM, study as input, hidden when predicting": hidden,
        "AAM, no study": predictions["without-study"]["aam"],
        "forest, abundances": forests["abundances", "oob"],
        "forest, abundances + one-hot study": forests["abundances + one-hot study", "oob"],
        "forest, abundances, sqrt (old default)": forests["abundances", "sqrt"],
        "forest, abundances + one-hot study, sqrt (old default)": forests["abundances + one-hot study", "sqrt"],
        "study mean": study_mean,
        "study median": study_median,
    }
    result = {"folds": args.folds, "seed": args.seed, "config": args.config, "variants": {}, "timings": timings}
    reference_name = "AAM, study as input"
    reference = variants[reference_name].assign(sample_id=lambda f: f["sample_id"].astype(str))
    in_wide = by_id == WIDE
    fold_of = folds.set_index("sample_id")["fold"].astype(int)
    for name, frame in variants.items():
        frame = frame.assign(sample_id=frame["sample_id"].astype(str))
        entry = _summary(frame, by_id)
        if "max_features" in frame:  # the forest's choice in each fold
            entry["max_features_per_fold"] = frame.groupby("fold")["max_features"].first().astype(str).tolist()
        if name != reference_name:  # how sure the comparison with AAM is: positive = AAM ahead
            entry["minus_aam"] = _paired(frame, reference, None, args.seed)
            entry[f"minus_aam_{WIDE}"] = _paired(frame, reference, in_wide, args.seed)
            entry["minus_aam_per_fold"] = [_paired(frame, reference, fold_of == k, args.seed) for k in range(1, args.folds + 1)]
        result["variants"][name] = entry
    lines = [
        "| variant | pooled MAE | MAE per fold (mean ± sd) | R² | MAE within study 10317 | R² within 10317 | 10317: this − AAM (95% interval) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in result["variants"].items():
        mean, sd = entry["mae_mean_sd"]
        paired = entry.get(f"minus_aam_{WIDE}")
        gap = "—" if paired is None else f"{paired['difference']:+.2f} ({paired['ci95'][0]:+.2f} to {paired['ci95'][1]:+.2f})"
        lines.append(
            f"| {name} | {entry['pooled']['mae']:.2f} | {mean:.2f} ± {sd:.2f} | {entry['pooled']['r2']:.3f} | "
            f"{entry[f'mae_{WIDE}']:.2f} | {entry[f'r2_{WIDE}']:.3f} | {gap} |"
        )
    # per fold: how sure "ahead on this fold" is, for every variant against AAM
    lines += [
        "",
        "| variant: this − AAM per fold (95% interval) | " + " | ".join(f"fold {k}" for k in range(1, args.folds + 1)) + " |",
        "|---|" + "---|" * args.folds,
    ]
    for name, entry in result["variants"].items():
        if "minus_aam_per_fold" in entry:
            cells = (f"{p['difference']:+.2f} ({p['ci95'][0]:+.2f} to {p['ci95'][1]:+.2f})" for p in entry["minus_aam_per_fold"])
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    (out / "accuracy.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
