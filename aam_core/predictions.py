"""The layout of a predictions file, written by training and baselines, read by ``aam evaluate``.

``sample_id``, ``actual``, ``predicted``, then — for classification — one column per class holding
that class's probability, named by the class label (QIIME 2's sample-classifier layout)::

    sample_id  actual  predicted  gum   tongue
    S001       gum     gum        0.81  0.19

``epoch`` (training's ``val_predictions.tsv``) and ``fold`` (cross-validation) are bookkeeping
columns; in a classification file every other column is a class probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from aam_core.errors import ConfigError, DataError
from aam_core.training.metrics import check_probabilities

COLUMNS = ("sample_id", "actual", "predicted")
BOOKKEEPING = ("epoch", "fold")
RESERVED = (*COLUMNS, *BOOKKEEPING)


def predictions_frame(
    sample_ids: Sequence[str],
    actual: Sequence,
    predicted: Sequence,
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``sample_id, actual, predicted`` plus one probability column per class.

    ``probabilities [n, len(classes)]`` holds the columns in the order of ``classes``; without
    them the frame has the three columns only. A class named like a reserved column (``actual``,
    ``epoch``, ...) is refused: reading the file back could not tell the two apart.
    """
    frame = pd.DataFrame(
        {
            "sample_id": np.asarray(sample_ids).astype(str),
            "actual": np.asarray(actual),
            "predicted": np.asarray(predicted),
        }
    )
    if probabilities is None:
        if classes is not None:
            raise ConfigError("`classes` names the columns of `probabilities`; give both or neither.")
        return frame
    matrix, labels = check_probabilities(probabilities, classes, len(frame))
    clash = [label for label in labels if label in RESERVED]
    if clash:
        raise DataError(
            f"A class named '{clash[0]}' cannot be written as a probability column: "
            f"{', '.join(RESERVED)} are the columns of a predictions file."
        )
    probability = pd.DataFrame(matrix, columns=labels, index=frame.index)
    return pd.concat([frame, probability], axis=1)


def probability_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a classification predictions frame that hold class probabilities."""
    return [str(c) for c in frame.columns if c not in RESERVED]


def read_probabilities(
    frame: pd.DataFrame, source: str = "predictions"
) -> tuple[np.ndarray, list[str]] | None:
    """``(probabilities [n, n_classes], classes)`` from a classification frame, or None if it has
    no probability column. ``source`` names the file in errors: a column that is not a number
    between 0 and 1 is a :class:`DataError`."""
    columns = probability_columns(frame)
    if not columns:
        return None
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: column '{column}' holds '{frame[column].iloc[row]}' for sample "
                f"'{frame['sample_id'].iloc[row]}'; in a classification predictions file every "
                f"column besides {', '.join(RESERVED)} is a class probability between 0 and 1."
            )
    return frame[columns].to_numpy(dtype=float), columns
