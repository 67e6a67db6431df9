"""Distances as text, fast: 17 decimals formatted with NumPy integer arithmetic.

Python's float formatting costs ~0.5 µs a number, longer for a 2,500-sample matrix than
computing it. Here a row block is scaled to integers exactly (``round(v × 10**17)`` through
Dekker's error-free product), cut into digit pairs with integer division by constants (which
NumPy does fast; its remainder is ~10× slower, so ``x % d`` is written ``x - (x // d) * d``),
and trailing zeros are dropped: ``0``, ``1``, ``0.5``, ``0.33333333333333331``. The absolute
error is below 1e-17, so a value reads back equal or within one unit of its last bit. Values
outside [0, 10) — never a UniFrac distance — fall back to Python's ``repr``.
"""

from __future__ import annotations

import numpy as np

# Dekker's split of 10**17 (exact in float64: 5**17 < 2**53), for an exact product v × 10**17.
_SPLITTER = 134217729.0  # 2**27 + 1
_E17 = 1e17
_E17_HI = _SPLITTER * _E17 - (_SPLITTER * _E17 - _E17)
_E17_LO = _E17 - _E17_HI
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint16)


def _scaled(values: np.ndarray) -> np.ndarray:
    """``round(values × 10**17)`` exactly (ties aside), as int64, for 0 ≤ values < 10: the
    product is formed as an unevaluated sum ``hi + lo`` (Dekker's two-product)."""
    hi = values * _E17
    c = _SPLITTER * values
    v_hi = c - (c - values)
    v_lo = values - v_hi
    lo = ((v_hi * _E17_HI - hi) + v_hi * _E17_LO + v_lo * _E17_HI) + v_lo * _E17_LO
    whole = np.rint(hi)
    return whole.astype(np.int64) + np.rint((hi - whole) + lo).astype(np.int64)


def format_rows(values: np.ndarray) -> list[bytes]:
    """Each row as tab-separated decimals ending in a newline: ``0.25\t1\t0\n``."""
    values = np.asarray(values, dtype=np.float64)
    r, n = values.shape
    if not (np.all(np.isfinite(values)) and values.min(initial=0) >= 0 and values.max(initial=0) < 10):
        return [("\t".join(map(repr, row)) + "\n").encode() for row in values.tolist()]
    # NumPy divides integers by a constant fast (libdivide) but its remainder is ~10× slower:
    # every "x % d" below is written "x - (x // d) * d".
    scaled = _scaled(values.ravel())
    upper = (scaled // 10**9).astype(np.uint32)  # integer digit and decimals 1-8
    lower = (scaled - upper.astype(np.int64) * 10**9).astype(np.uint32)  # decimals 9-17
    integer = upper // 10**8
    decimals = np.full(r * n, 17, dtype=np.int64)
    round_ = np.flatnonzero(lower == (lower // 10) * 10)  # last decimal 0: few, look closer
    if len(round_):
        low, high = lower[round_], upper[round_] - integer[round_] * 10**8
        decimals[round_] = np.where(low > 0, 17 - _trailing_zeros(low), 8 - _trailing_zeros(high))
    chars = np.empty((r * n, 20), dtype=np.uint8)
    pairs = chars.view(np.uint16)  # byte pairs (0,1) (2,3) ... (18,19)
    for slot in (4, 3, 2, 1):  # decimals 7-8, 5-6, 3-4, 1-2
        rest = upper // 100
        pairs[:, slot] = _PAIRS[upper - rest * 100]
        upper = rest
    chars[:, 0] = integer + ord("0")
    chars[:, 1] = ord(".")
    rest = lower // 10
    chars[:, 18] = lower - rest * 10 + ord("0")
    lower = rest
    for slot in (8, 7, 6, 5):  # decimals 15-16, 13-14, 11-12, 9-10
        rest = lower // 100
        pairs[:, slot] = _PAIRS[lower - rest * 100]
        lower = rest
    chars[:, 19] = ord("\t")
    chars.reshape(r, n, 20)[:, -1, 19] = ord("\n")
    data = chars[_KEEP[decimals]].tobytes()
    ends = np.cumsum(_WIDTH[decimals].reshape(r, n).sum(axis=1))
    return [data[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends, strict=True)]


def _trailing_zeros(values: np.ndarray) -> np.ndarray:
    """Trailing decimal zeros of each value, up to 8 (of 9 digits; a zero counts 8)."""
    count = np.zeros(values.shape, dtype=np.int64)
    for power in (10**p for p in range(1, 9)):
        count += (values // power) * power == values
    return count


# Which of a value's 20 bytes (digit, point, 17 decimals, separator) to keep, by decimals kept.
_KEEP = np.zeros((18, 20), dtype=bool)
_KEEP[:, [0, 19]] = True
for _kept in range(1, 18):
    _KEEP[_kept, 1 : 2 + _kept] = True
_WIDTH = _KEEP.sum(axis=1)
