"""Sample ID lists: reading them and checking them against the loaded data."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from aam_core.data.dataset import Dataset
from aam_core.errors import DataError

Samples = Sequence[str] | str | os.PathLike


class MissingSamplesWarning(UserWarning):
    """Listed samples that the loaded table and metadata do not hold."""


def read_sample_list(path: str | os.PathLike) -> list[str]:
    """Sample IDs, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Sample list not found: {path}")
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def resolve_samples(samples: Samples, what: str) -> list[str]:
    """IDs from a list, or from a file of one ID per line; duplicates removed, order kept."""
    if isinstance(samples, str | os.PathLike):
        ids = read_sample_list(samples)
    else:
        ids = [str(s).strip() for s in samples]
    ids = list(dict.fromkeys(s for s in ids if s))
    if not ids:
        raise DataError(f"The {what} sample list is empty.")
    return ids


def present(ids: list[str], dataset: Dataset, what: str) -> list[str]:
    """The IDs the loaded data holds; the others are skipped with one warning."""
    known = set(dataset.sample_ids)
    missing = [s for s in ids if s not in known]
    if missing:
        noun = "sample" if len(missing) == 1 else "samples"
        warnings.warn(
            f"{len(missing)} {what} {noun} of {len(ids)} are not in the loaded data (absent from "
            f"the table or metadata, or without a usable target) and were skipped, "
            f"e.g. '{missing[0]}'.",
            MissingSamplesWarning,
            stacklevel=3,
        )
    return [s for s in ids if s in known]


def resolve_list(samples: Samples, dataset: Dataset, what: str) -> list[str]:
    """The usable IDs of one list (unknown ones skipped with a warning); none at all is an error."""
    ids = present(resolve_samples(samples, what), dataset, what)
    if not ids:
        raise DataError(f"No usable {what} samples: none of the listed IDs is in the table with a target.")
    return ids


def check_disjoint(named: dict[str, list[str]]) -> None:
    """No sample may sit on two sides of a split."""
    names = [n for n, ids in named.items() if ids]
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            overlap = set(named[first]) & set(named[second])
            if overlap:
                raise DataError(
                    f"{len(overlap)} samples are in both the {first} and {second} lists, "
                    f"e.g. '{sorted(overlap)[0]}'."
                )


def resolve_split(train: Samples, val: Samples, dataset: Dataset) -> tuple[list[str], list[str]]:
    """Given training and validation lists → the usable, disjoint IDs of each."""
    named = {"training": resolve_list(train, dataset, "training"), "validation": resolve_list(val, dataset, "validation")}
    check_disjoint(named)
    return named["training"], named["validation"]
