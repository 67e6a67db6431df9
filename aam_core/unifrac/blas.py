"""One OpenBLAS thread while UniFrac multiplies matrices.

UniFrac runs its own worker threads (row stripes) and, on the fly, inside a training loop whose
threads keep the cores busy. OpenBLAS's threads busy-wait for work; when the cores are taken
they slow a 80×1,000×2,500 product several-fold (the unweighted stripes of oral-age: 1.05 s of
CPU with OpenBLAS's 2 threads on a loaded 2-core machine, 0.35 s with one). NumPy has no call to
set this, so the setter is looked up in the OpenBLAS libraries loaded in this process (on
Linux, through ``/proc/self/maps``); anywhere else — another BLAS, another system — this does
nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator

# The C functions, as named in NumPy's and SciPy's wheels (prefix ``scipy_``, suffix ``64_`` for
# 64-bit integers) and in a plain OpenBLAS. Not the Fortran ones (a trailing ``_`` after
# ``threads``: they take a pointer).
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)
_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


@functools.cache
def _openblas() -> tuple[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr], ...]:
    """``(get, set)`` thread-count functions of every OpenBLAS loaded (NumPy and SciPy each
    bring their own); NumPy is loaded by the time UniFrac asks."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return ()
    found = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        get = next((getattr(library, name) for name in _GETTERS if hasattr(library, name)), None)
        set_ = next((getattr(library, name) for name in _SETTERS if hasattr(library, name)), None)
        if get is not None and set_ is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            set_.restype, set_.argtypes = None, [ctypes.c_int]
            found.append((get, set_))
    return tuple(found)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with OpenBLAS on one thread; the previous setting is restored after."""
    libraries = _openblas()
    before = [get() for get, _ in libraries]
    for _, set_ in libraries:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), threads in zip(libraries, before, strict=True):
            set_(threads)
