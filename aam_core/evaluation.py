"""Compare prediction files (AAM's ``val_predictions.tsv``, a baseline's TSV) on the same samples.

Each file needs ``sample_id``, ``actual`` and ``predicted`` columns (the layout of
:mod:`aam_core.predictions`). Files are only compared when they cover exactly the same samples
with the same actual values: metrics on different samples are not comparable. A classification
file may carry one probability column per class; with two classes its ROC AUC is reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aam_core.data.paths import check_kind, input_file
from aam_core.errors import ConfigError, DataError, library_message
from aam_core.predictions import COLUMNS, probability_columns, read_probabilities
from aam_core.training.metrics import METRIC_LABELS, classification_report, compute_metrics

REGRESSION_COLUMNS = {k: METRIC_LABELS[k] for k in ("mae", "rmse", "r2", "n")}
CLASSIFICATION_COLUMNS = {k: METRIC_LABELS[k] for k in ("accuracy", "f1", "auc", "n")}
PER_CLASS_COLUMNS = ("name", "class", "precision", "recall", "F1", "support")


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    """A predictions TSV with its three columns checked; sample IDs read as text.

    Other columns (``epoch``, ``fold``, class probabilities) are kept, after the three.
    """
    path = input_file(path, "Predictions file", "predictions")
    check_kind(path, "predictions")
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"sample_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable TSV: {library_message(exc)}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}; a predictions file needs "
            f"sample_id, actual, predicted (found: {found})."
        )
    frame = frame[[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)]]
    if frame.empty:
        raise DataError(f"{path} has no predictions.")
    empty = frame[list(COLUMNS)].isna().any(axis=1)
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 2  # + header, 1-based
        raise DataError(
            f"{path} has {int(empty.sum())} rows with an empty value (e.g. line {row})."
        )
    duplicated = frame["sample_id"].duplicated()
    if duplicated.any():
        raise DataError(
            f"{path} lists {int(duplicated.sum())} sample IDs more than once "
            f"(e.g. '{frame['sample_id'][duplicated].iloc[0]}')."
        )
    return frame


def _is_numeric(frame: pd.DataFrame) -> bool:
    return all(pd.api.types.is_numeric_dtype(frame[c]) for c in ("actual", "predicted"))


def _names_its_labels(frame: pd.DataFrame) -> bool:
    """True when the extra columns name every actual label: class probabilities of numeric
    labels (``0``/``1``) in QIIME 2's layout."""
    columns = set(probability_columns(frame))
    return bool(columns) and set(frame["actual"].astype(str)) <= columns


def _check_same_samples(
    first: Path, frame: pd.DataFrame, other: Path, theirs: pd.DataFrame
) -> None:
    mine, yours = set(frame["sample_id"]), set(theirs["sample_id"])
    if mine == yours:
        return
    only_mine, only_yours = sorted(mine - yours), sorted(yours - mine)
    parts = []
    if only_mine:
        parts.append(f"{len(only_mine)} only in {first} (e.g. '{only_mine[0]}')")
    if only_yours:
        parts.append(f"{len(only_yours)} only in {other} (e.g. '{only_yours[0]}')")
    raise DataError(
        f"{first} and {other} cover different samples: {'; '.join(parts)}. "
        "Compare predictions on the same validation samples."
    )


def _check_same_actuals(
    first: Path, frame: pd.DataFrame, other: Path, theirs: pd.DataFrame, numeric: bool
) -> None:
    a = frame.set_index("sample_id")["actual"]
    b = theirs.set_index("sample_id")["actual"].reindex(a.index)
    if numeric:
        same = np.isclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), rtol=1e-6, atol=1e-9)
    else:
        same = a.astype(str).to_numpy() == b.astype(str).to_numpy()
    if not same.all():
        sample = a.index[np.flatnonzero(~same)[0]]
        raise DataError(
            f"{first} and {other} disagree on the actual value of {int((~same).sum())} samples "
            f"(e.g. '{sample}': {a[sample]} vs {b[sample]})."
        )


def _names(paths: list[Path]) -> list[str]:
    """File names, or the paths as given where two files share a name."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def _load(
    paths: Sequence[str | os.PathLike], classifier: bool | None
) -> tuple[list[Path], list[pd.DataFrame], bool]:
    """Read and cross-check the files; decide the task when ``classifier`` is None."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("Give at least one predictions file (--predictions).")
    frames = [read_predictions(p) for p in paths]
    if classifier is None:
        classifier = any(not _is_numeric(f) or _names_its_labels(f) for f in frames)
    elif not classifier:
        for path, frame in zip(paths, frames, strict=True):
            if not _is_numeric(frame):
                raise DataError(f"{path} holds non-numeric actual or predicted values.")
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        _check_same_samples(paths[0], frames[0], path, frame)
        _check_same_actuals(paths[0], frames[0], path, frame, numeric=not classifier)
    return paths, frames, classifier


def evaluate(paths: Sequence[str | os.PathLike], classifier: bool | None = None) -> pd.DataFrame:
    """One row per file: ``name``, ``MAE``, ``RMSE``, ``R²``, ``n`` (or ``accuracy``, ``F1``, ``n``
    and, when any file carries probabilities of two classes, ``AUC`` — None for the others).

    ``classifier=None`` decides from the files: classification when any ``actual`` or
    ``predicted`` column holds text, or a file's extra columns name every actual label. In a
    classification file every column besides sample_id, actual, predicted, epoch and fold is a
    class probability; one that is not a number in [0, 1] is refused. Files whose sample sets or
    actual values differ are refused.
    """
    paths, frames, classifier = _load(paths, classifier)
    scores = []
    for path, frame in zip(paths, frames, strict=True):
        found = read_probabilities(frame, str(path)) if classifier else None
        probabilities, classes = (None, None) if found is None else found
        actual, predicted = frame["actual"].to_numpy(), frame["predicted"].to_numpy()
        scores.append(compute_metrics(actual, predicted, classifier, probabilities, classes))
    labels = dict(CLASSIFICATION_COLUMNS if classifier else REGRESSION_COLUMNS)
    if not any("auc" in values for values in scores):
        labels.pop("auc", None)
    rows = [
        [name, *(values.get(key) for key in labels)]
        for name, values in zip(_names(paths), scores, strict=True)
    ]
    table = pd.DataFrame(rows, columns=["name", *labels.values()], dtype=object).infer_objects()
    if "auc" in labels:  # None (no probabilities) stays apart from NaN (one class only)
        table[labels["auc"]] = pd.Series([values.get("auc") for values in scores], dtype=object)
    return table


def evaluate_per_class(
    paths: Sequence[str | os.PathLike], classifier: bool | None = None
) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class, per file: one row per (file, class).

    The same checks as :func:`evaluate`; regression files are refused.
    """
    paths, frames, classifier = _load(paths, classifier)
    if not classifier:
        raise ConfigError(
            "--per-class: per-class precision and recall need classification files; these hold "
            "numbers (add --classifier to score numeric labels as classes)."
        )
    rows = []
    for name, frame in zip(_names(paths), frames, strict=True):
        report = classification_report(frame["actual"], frame["predicted"])
        for label, values in report.items():
            rows.append(
                {
                    "name": name,
                    "class": label,
                    "precision": values["precision"],
                    "recall": values["recall"],
                    "F1": values["f1"],
                    "support": values["support"],
                }
            )
    return pd.DataFrame(rows, columns=list(PER_CLASS_COLUMNS))
