"""Sample ID lists: reading them and checking them against the loaded data."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from aam_core.data.dataset import Dataset
from aam_core.data.paths import input_file
from aam_core.errors import DataError

Samples = Sequence[str] | str | os.PathLike


class MissingSamplesWarning(UserWarning):
    """Listed samples that the loaded table and metadata do not hold."""


def read_sample_list(path: str | os.PathLike) -> list[str]:
    """Sample IDs, one per line (blank lines and ``#`` comments ignored)."""
    path = input_file(path, "Sample list", "samples")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file of sample IDs (one per line).") from None
    lines = [line.strip() for line in text.splitlines()]
    ids = [line for line in lines if line and not line.startswith("#")]
    tabbed = [line for line in ids if "\t" in line]
    if tabbed:
        raise DataError(
            f"{path} holds tab-separated columns (e.g. '{tabbed[0][:40]}'), not one sample ID per "
            "line; give a list such as a run's train_samples.txt."
        )
    return ids


def _source(samples: Samples) -> str:
    """How errors name a sample list: its file, or 'the given list'."""
    return str(samples) if isinstance(samples, str | os.PathLike) else "the given list"


def resolve_samples(samples: Samples, what: str) -> list[str]:
    """IDs from a list, or from a file of one ID per line; duplicates removed, order kept."""
    if isinstance(samples, str | os.PathLike):
        ids = read_sample_list(samples)
    else:
        ids = [str(s).strip() for s in samples]
    ids = list(dict.fromkeys(s for s in ids if s))
    if not ids:
        raise DataError(f"The {what} sample list ({_source(samples)}) holds no sample IDs.")
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


def none_usable(listed: list[str], samples: Samples, what: str) -> DataError:
    """The error for a list none of whose IDs the loaded data holds."""
    return DataError(
        f"No usable {what} samples: none of the {len(listed)} IDs in {_source(samples)} "
        f"(e.g. '{listed[0]}') is in the table with a usable target."
    )


def resolve_list(samples: Samples, dataset: Dataset, what: str) -> list[str]:
    """The usable IDs of one list (unknown ones skipped with a warning); none at all is an error."""
    listed = resolve_samples(samples, what)
    ids = present(listed, dataset, what)
    if not ids:
        raise none_usable(listed, samples, what)
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
