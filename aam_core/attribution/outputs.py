"""Files an explanation leaves: the long TSV, the BIOM table, QIIME 2's importance layout, a
per-feature and a per-sample table. Every file is written atomically (temporary name, rename).

``attributions.tsv`` (``attention.tsv`` for attention weights): one row per sample and ASV the
model reads — ``sample_id, feature_id, sequence, taxonomy, abundance, attribution`` — where
``abundance`` is the ASV's share of the sample's reads and ``attribution`` is in the target's
original units (or the predicted class's probability). Within a sample, the largest absolute
values come first.

``attributions.biom``: the same values as a features × samples BIOM table (HDF5), taxonomy as
observation metadata when the input table had it; absent ASVs are 0.

``importance.tsv``: QIIME 2's ``FeatureData[Importance]`` layout — index column ``feature``, one
numeric ``importance`` column, highest first — which ``qiime sample-classifier heatmap`` and
``qiime tools import --type 'FeatureData[Importance]'`` read.
"""

from __future__ import annotations

import json
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd

from aam_core.attribution.results import ATTENTION, Explanation
from aam_core.files import write_atomic, write_text_atomic, write_tsv_atomic


def value_name(explanation: Explanation) -> str:
    """``attention`` for attention weights, else ``attribution``: the column and file stem."""
    return "attention" if explanation.kind == ATTENTION else "attribution"


def file_stem(explanation: Explanation) -> str:
    return "attention" if explanation.kind == ATTENTION else "attributions"


def long_frame(explanation: Explanation) -> pd.DataFrame:
    """One row per (sample, ASV read); within a sample by decreasing absolute value."""
    owner = np.repeat(np.arange(len(explanation)), np.diff(explanation.offsets))
    feature = explanation.features
    order = np.lexsort((feature, -np.abs(explanation.values), owner))
    f = feature[order]
    return pd.DataFrame(
        {
            "sample_id": explanation.sample_ids[owner[order]].astype(str),
            "feature_id": explanation.feature_ids[f].astype(str),
            "sequence": explanation.sequences[f].astype(str),
            "taxonomy": explanation.taxonomy[f].astype(str),
            "abundance": explanation.abundance[order],
            value_name(explanation): explanation.values[order],
        }
    )


def biom_table(explanation: Explanation) -> biom.Table:
    """Features × samples of the values, for the features read in any explained sample."""
    matrix = explanation.matrix().T.tocsr()  # [F, N]
    used = np.flatnonzero(explanation.read_by() > 0)
    taxonomy = explanation.taxonomy[used]
    metadata = None
    if any(taxonomy):
        metadata = [
            {"taxonomy": [r.strip() for r in str(t).split(";")] if t else []} for t in taxonomy
        ]
    return biom.Table(
        matrix[used],
        [str(i) for i in explanation.feature_ids[used]],
        [str(s) for s in explanation.sample_ids],
        observation_metadata=metadata,
        type="Table",
    )


def write_biom(table: biom.Table, path: str | Path) -> Path:
    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as handle:
            table.to_hdf5(handle, "aam explain")

    return write_atomic(path, write)


def importance_frame(explanation: Explanation) -> pd.DataFrame:
    """QIIME 2 layout: index ``feature``, one ``importance`` column, highest first."""
    return explanation.importance().to_frame()


def features_frame(explanation: Explanation) -> pd.DataFrame:
    """Per feature: sequence, taxonomy, importance, signed mean value, samples reading it."""
    importance = explanation.importance()
    position = {str(f): i for i, f in enumerate(explanation.feature_ids)}
    where = np.array([position[f] for f in importance.index], dtype=np.int64)
    mean = explanation.mean_effect().to_numpy()[where]
    return pd.DataFrame(
        {
            "feature": importance.index,
            "sequence": explanation.sequences[where].astype(str),
            "taxonomy": explanation.taxonomy[where].astype(str),
            "importance": importance.to_numpy(),
            "mean_attention" if explanation.kind == ATTENTION else "mean_effect": mean,
            "samples": explanation.read_by()[where],
        }
    )


def samples_frame(explanation: Explanation, actual: np.ndarray | None) -> pd.DataFrame:
    """Per sample: prediction, the baseline it is explained from, Σ values and what is left."""
    frame = pd.DataFrame({"sample_id": explanation.sample_ids.astype(str)})
    if actual is not None:
        frame["actual"] = actual
    if explanation.predicted_class is not None:
        frame["predicted_class"] = explanation.predicted_class
    lengths = np.diff(explanation.offsets)
    sums = (
        np.add.reduceat(explanation.values, explanation.offsets[:-1])
        if len(explanation.values)
        else 0.0
    )
    frame["prediction"] = explanation.prediction
    if explanation.kind == ATTENTION:
        frame["asvs"] = lengths
        return frame
    frame["baseline"] = explanation.baseline
    frame["sum_attributions"] = sums
    frame["residual"] = explanation.residual()
    frame["asvs"] = lengths
    return frame


def write_tables(
    explanation: Explanation, folder: Path, actual: np.ndarray | None
) -> dict[str, Path]:
    """Every table of an explanation into ``folder``; returns ``{name: path}``."""
    stem = file_stem(explanation)
    paths = {
        "tsv": write_tsv_atomic(long_frame(explanation), folder / f"{stem}.tsv"),
        "biom": write_biom(biom_table(explanation), folder / f"{stem}.biom"),
        "importance": write_text_atomic(
            folder / "importance.tsv", importance_frame(explanation).to_csv(sep="\t")
        ),
        "features": write_tsv_atomic(features_frame(explanation), folder / "features.tsv"),
        "samples": write_tsv_atomic(samples_frame(explanation, actual), folder / "samples.tsv"),
    }
    return paths


def write_json(payload: dict, path: Path) -> Path:
    return write_text_atomic(
        path, json.dumps(payload, indent=2, allow_nan=False, default=float) + "\n"
    )
