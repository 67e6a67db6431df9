"""Loading, tokenising, splitting and batching microbiome tables.

Loaded on first use, so that light modules of this package (:mod:`aam_core.data.paths`) import
without pandas and scikit-bio.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "aam_core.data.dataset",
    "load_dataset": "aam_core.data.dataset",
    "read_sample_list": "aam_core.data.samples",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aam_core.data' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
