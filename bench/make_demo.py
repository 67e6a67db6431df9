"""Regenerate the demo dataset shipped in ``aam_core/data/demo/`` from the oral-age folder.

Picks about 300 samples with a fixed seed, stratified by ``qiita_study_id`` so every study keeps
some samples, keeps only the ASVs present in them, and writes an HDF5 BIOM table (feature IDs are
the sequences, the ``taxonomy`` observation metadata is kept) plus the matching metadata rows.
The output is byte-for-byte reproducible: same seed, same files.

    python bench/make_demo.py                      # from the repository root
    python bench/make_demo.py --source ../shared/data/oral-age --n-samples 300 --seed 0

Prints one JSON line describing what it wrote.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "oral-age"
DEFAULT_OUT = REPO / "aam_core" / "data" / "demo"
ID_COLUMN = "#SampleID"
STUDY_COLUMN = "qiita_study_id"
#: A fixed timestamp so the HDF5 file does not change between runs.
CREATION_DATE = datetime(2020, 1, 1)


def allocate(sizes: pd.Series, total: int, minimum: int) -> dict[str, int]:
    """Samples to draw per study: proportional to its size, at least ``minimum`` (or all it has)."""
    share = sizes / sizes.sum() * total
    return {
        study: int(min(size, max(minimum, round(share[study]))))
        for study, size in sizes.sort_index().items()
    }


def choose_samples(
    metadata: pd.DataFrame, table_ids: set[str], total: int, minimum: int, seed: int
) -> list[str]:
    """Sample IDs in source-table order, drawn per study with one seeded generator."""
    usable = metadata[metadata[ID_COLUMN].isin(table_ids) & (metadata["age"].str.strip() != "")]
    by_study = {study: rows[ID_COLUMN].to_numpy() for study, rows in usable.groupby(STUDY_COLUMN)}
    counts = allocate(pd.Series({s: len(ids) for s, ids in by_study.items()}), total, minimum)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for study in sorted(by_study):
        ids = np.sort(by_study[study])
        chosen.update(str(s) for s in rng.choice(ids, size=counts[study], replace=False))
    return sorted(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the oral-age folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the demo is written")
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--min-per-study", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = biom.load_table(str(args.source / "table.biom"))
    metadata = pd.read_csv(args.source / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    keep = choose_samples(
        metadata, set(table.ids(axis="sample")), args.n_samples, args.min_per_study, args.seed
    )
    order = [s for s in table.ids(axis="sample") if s in set(keep)]
    subset = table.filter(order, axis="sample", inplace=False)
    subset = subset.filter(lambda values, _id, _md: values.sum() > 0, axis="observation")
    subset = subset.sort_order(order, axis="sample")

    args.out.mkdir(parents=True, exist_ok=True)
    with h5py.File(args.out / "table.biom", "w") as handle:
        subset.to_hdf5(handle, "aam bench/make_demo.py", creation_date=CREATION_DATE)
    rows = metadata.set_index(ID_COLUMN).loc[order].reset_index()
    rows.to_csv(args.out / "metadata.tsv", sep="\t", index=False, lineterminator="\n")

    studies = rows[STUDY_COLUMN].value_counts().sort_index()
    print(
        json.dumps(
            {
                "samples": int(subset.shape[1]),
                "asvs": int(subset.shape[0]),
                "nnz": int(subset.nnz),
                "samples_per_study": {str(k): int(v) for k, v in studies.items()},
                "bytes": {
                    name: (args.out / name).stat().st_size
                    for name in ("table.biom", "metadata.tsv")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
