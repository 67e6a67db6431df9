"""Train/validation splits and cross-validation folds, reproducible from a seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from aam_core.config import check_seed
from aam_core.errors import DataError, library_message


def train_val_split(
    sample_ids: Sequence[str],
    val_fraction: float,
    seed: int,
    strata: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Shuffled split; with ``strata`` each category keeps its share on both sides."""
    ids = np.asarray(sample_ids, dtype=object)
    check_seed(seed)
    if len(ids) < 2:
        raise DataError(f"Need at least 2 samples to split into train and validation, got {len(ids)}.")
    stratify = None
    if strata is not None:
        stratify = np.asarray(strata, dtype=str)
        rare = [c for c, n in Counter(stratify).items() if n < 2]
        if rare:
            raise DataError(
                f"Cannot split by --stratify-by: {len(rare)} of its {len(set(stratify))} values "
                f"have a single sample (e.g. '{rare[0]}'); stratify by a categorical column whose "
                "every value holds at least 2 samples."
            )
    try:
        train, val = train_test_split(ids, test_size=val_fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"Cannot split {len(ids)} samples: {library_message(exc)}") from None
    return [str(s) for s in train], [str(s) for s in val]


def three_way_split(
    sample_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float | None,
    seed: int,
    strata: Sequence[str] | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """``(train, validation, test)``; both fractions are of all samples, the test set is drawn
    first (and is empty when ``test_fraction`` is None)."""
    ids = list(sample_ids)
    test: list[str] = []
    if test_fraction:
        if val_fraction + test_fraction >= 1.0:
            raise DataError(
                f"--val-fraction {val_fraction} and --test-fraction {test_fraction} leave no training samples."
            )
        ids, test = train_val_split(ids, test_fraction, seed, strata)
        if strata is not None:
            position = {s: i for i, s in enumerate(sample_ids)}
            strata = [strata[position[s]] for s in ids]
        val_fraction = val_fraction / (1.0 - test_fraction)
    train, val = train_val_split(ids, val_fraction, seed, strata)
    return train, val, test


def kfold_splits(
    sample_ids: Sequence[str],
    folds: int,
    seed: int,
    groups: Sequence[str] | None = None,
    strata: Sequence[str] | None = None,
) -> list[tuple[list[str], list[str]]]:
    """``folds`` (train, validation) pairs; a group never sits on both sides of a fold."""
    ids = np.asarray(sample_ids, dtype=object)
    check_seed(seed)
    if folds < 2:
        raise DataError(f"--folds must be at least 2, got {folds}.")
    if folds > len(ids):
        raise DataError(f"--folds {folds} is more than the {len(ids)} usable samples.")
    if groups is not None and strata is not None:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    elif groups is not None:
        splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    elif strata is not None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    y = None if strata is None else np.asarray(strata, dtype=str)
    g = None if groups is None else np.asarray(groups, dtype=str)
    try:
        pairs = list(splitter.split(ids, y, g))
    except ValueError as exc:
        raise DataError(f"Cannot make --folds {folds}: {library_message(exc)}") from None
    return [([str(s) for s in ids[tr]], [str(s) for s in ids[va]]) for tr, va in pairs]
