"""Exact UniFrac: ``aam unifrac`` against Striped UniFrac's ``ssu`` and scikit-bio; prints JSON.

On the whole oral-age table (2,537 samples, 5,574-tip tree), per metric: whole-process seconds
and peak RSS (median of ``--repeats`` runs, each its own process), for the ``.h5`` output
(against ``ssu -r hdf5_fp64 --pcoa 0``: the same float64 HDF5 matrix, no PCoA) and the ``.tsv``
output (against ``ssu``'s default text output); ``ssu``'s time over AAM's; the largest
difference between the two full matrices; and scikit-bio's time per pair and its largest
difference from AAM on a random subset.

``aam unifrac`` pays for ``aam``'s own start-up (every command's module is imported to build the
command group), which the JSON reports as ``aam_startup_s`` (``aam --help``); ``unifrac_command``
runs the same click command without the group, i.e. what UniFrac itself costs.

The benchmark is heavy (~2 minutes on 2 cores); on a shared machine run it alone:

    flock /tmp/aam-heavy.lock python bench/unifrac.py
    python bench/unifrac.py --repeats 1 --skbio-samples 50      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oral-age"
SSU_METHOD = {"unweighted": "unweighted", "weighted-normalized": "weighted_normalized_fp64"}
_SCRIPT = Path(sys.executable).with_name("aam")
AAM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "import sys; from aam_core.cli import main; main(sys.argv[1:])"]
COMMAND = [sys.executable, "-c", "from aam_core.cli.unifrac import command; command(prog_name='aam unifrac')"]


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process, as ``/usr/bin/time`` sees them (a child's
    ``ru_maxrss`` from this Python process would include the memory it was forked with)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:6])} … failed: {done.stderr.decode()[-2000:]}")
        peak_kb = float(report.read().split()[-1])
    return seconds, peak_kb / 1024


def measure(commands: dict[str, list[str]], repeats: int) -> dict[str, dict]:
    """Run every command ``repeats`` times, interleaved (A B C A B C …) so that a change in the
    machine's load touches all of them alike; medians per command."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, argv in commands.items():
            runs[name].append(run(argv))
    return {
        name: {
            "seconds": round(statistics.median(r[0] for r in found), 3),
            "peak_rss_mb": round(statistics.median(r[1] for r in found), 1),
            "runs_s": [round(r[0], 3) for r in found],
        }
        for name, found in runs.items()
    }


def read_h5(path: Path, order: list[str]) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        ids = [s.decode() for s in handle["order"][:]]
        matrix = handle["matrix"][:]
    position = {s: i for i, s in enumerate(ids)}
    index = [position[s] for s in order]
    return matrix[np.ix_(index, index)]


def skbio_reference(metric: str, aam: np.ndarray, sample_ids: list[str], n: int) -> dict:
    import warnings

    import skbio
    from skbio.diversity import beta_diversity

    from aam_core.unifrac.inputs import read_counts

    counts = read_counts(DATA / "table.biom")
    rows = np.sort(np.random.default_rng(0).choice(len(counts.sample_ids), size=n, replace=False))
    subset = counts.matrix[rows].toarray()
    present = subset.sum(axis=0) > 0
    taxa = [f for f, keep in zip(counts.feature_ids, present, strict=True) if keep]
    tree = skbio.TreeNode.read(str(DATA / "tree.nwk"))
    kwargs = {"normalized": True} if metric == "weighted-normalized" else {}
    name = "unweighted_unifrac" if metric == "unweighted" else "weighted_unifrac"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = beta_diversity(name, subset[:, present], ids=[counts.sample_ids[i] for i in rows], taxa=taxa, tree=tree, **kwargs)
    seconds = time.perf_counter() - start
    position = {s: i for i, s in enumerate(sample_ids)}
    index = [position[counts.sample_ids[i]] for i in rows]
    return {
        "samples": n,
        "seconds": round(seconds, 3),
        "us_per_pair": round(seconds / (n * (n - 1) / 2) * 1e6, 1),
        "max_abs_diff_vs_aam": float(np.abs(aam[np.ix_(index, index)] - result.data).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skbio-samples", type=int, default=100)
    parser.add_argument("--metrics", nargs="+", default=list(SSU_METHOD), choices=list(SSU_METHOD))
    args = parser.parse_args()
    table, tree = str(DATA / "table.biom"), str(DATA / "tree.nwk")
    ssu = shutil.which("ssu")
    report: dict = {
        "data": {"table": table, "tree": tree},
        "cpus": len(os.sched_getaffinity(0)),
        "repeats": args.repeats,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "aam_startup_s": measure({"help": [*AAM, "--help"]}, args.repeats)["help"]["seconds"],
    }
    with tempfile.TemporaryDirectory(prefix="aam-unifrac-bench-") as tmp:
        out = Path(tmp)
        for metric in args.metrics:
            flags = ["--table", table, "--tree", tree, "--metric", metric, "--device", "cpu", "--output"]
            commands = {}
            for ext in ("h5", "tsv"):
                commands[f"aam_unifrac_{ext}"] = [*AAM, "unifrac", *flags, str(out / f"aam.{ext}")]
                commands[f"unifrac_command_{ext}"] = [*COMMAND, *flags, str(out / f"aam.{ext}")]
            if ssu:
                base = [ssu, "-i", table, "-t", tree, "-m", SSU_METHOD[metric]]
                commands["ssu_h5"] = [*base, "-o", str(out / "ssu.h5"), "-r", "hdf5_fp64", "--pcoa", "0"]
                commands["ssu_tsv"] = [*base, "-o", str(out / "ssu.tsv")]
            result: dict = measure(commands, args.repeats)
            if ssu:
                for ext in ("h5", "tsv"):
                    for ours in ("aam_unifrac", "unifrac_command"):
                        ratio = result[f"ssu_{ext}"]["seconds"] / result[f"{ours}_{ext}"]["seconds"]
                        result[f"ssu_over_{ours}_{ext}"] = round(ratio, 2)
            import h5py

            with h5py.File(out / "aam.h5", "r") as handle:
                sample_ids = [s.decode() for s in handle["order"][:]]
            aam = read_h5(out / "aam.h5", sample_ids)
            if ssu:
                result["max_abs_diff_vs_ssu"] = float(np.abs(aam - read_h5(out / "ssu.h5", sample_ids)).max())
            if args.skbio_samples:
                result["skbio"] = skbio_reference(metric, aam, sample_ids, args.skbio_samples)
            report[metric] = result
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
