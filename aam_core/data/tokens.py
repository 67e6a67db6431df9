"""Nucleotide tokens: A C G T → 1..4, anything else (N, IUPAC codes) → 5, 0 = padding.

6 is the mask token of masked-nucleotide pretraining; it never comes from a sequence.
"""

from __future__ import annotations

import warnings

import numpy as np

PAD, N_TOKEN, MASK_TOKEN = 0, 5, 6
VOCAB_SIZE = 7
#: Bases a masked position can be (the classes of the nucleotide head): A C G T N → 0..4.
N_BASES = 5

_LOOKUP = np.full(256, N_TOKEN, dtype=np.uint8)
for _i, _base in enumerate("ACGT", start=1):
    _LOOKUP[ord(_base)] = _i
    _LOOKUP[ord(_base.lower())] = _i


def tokenize(sequences: list[str] | np.ndarray, max_bp: int) -> np.ndarray:
    """One ``uint8 [n, L]`` array; L is the longest sequence capped at ``max_bp``.

    Longer sequences are truncated, with a single warning for the whole table.
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(min(lengths.max(initial=1), max_bp))
    too_long = int((lengths > max_bp).sum())
    if too_long:
        warnings.warn(
            f"{too_long} sequences are longer than --max-bp {max_bp} and were truncated.",
            stacklevel=2,
        )
    out = np.zeros((len(sequences), width), dtype=np.uint8)
    for row, seq in enumerate(sequences):
        raw = np.frombuffer(seq[:width].encode("ascii", "replace"), dtype=np.uint8)
        out[row, : len(raw)] = _LOOKUP[raw]
    return out
