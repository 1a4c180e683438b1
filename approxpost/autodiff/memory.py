"""Keep glibc from returning large temporaries to the kernel after every op.

A batched pass over S = 64 parameter vectors makes temporaries of a few MB
per op. By default glibc serves blocks that large with a fresh ``mmap`` and
gives them back with ``munmap`` when freed (or trims the heap top), so the
next op's temporary starts on untouched pages and pays a page fault per 4 KiB.
Measured here, that made the same batched forward/backward ~2.4× slower
(12 ms instead of 5 ms, ``bench/autodiff.py``), for NumPy code with or
without autodiff. Raising the mmap and trim thresholds lets freed blocks be
reused from the heap; the cost is up to ``trim_threshold`` bytes of freed
memory the process keeps instead of returning.

Applied at first use, not on import (importing a library should not change
the process's allocator): ``Method.fit``, ``compare`` and the CLI call
:func:`ensure_malloc_tuned`, which tunes once per process; call it yourself
before timing ``ad`` code outside them. Set the environment variable
``APPROXPOST_MALLOC_TUNING=0`` to leave the allocator alone; it is a no-op on
platforms without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["tune_malloc", "ensure_malloc_tuned"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc(mmap_threshold: int = 32 * 2**20, trim_threshold: int = 128 * 2**20) -> bool:
    """Raise glibc's mmap and trim thresholds; return whether both were applied.

    Parameters
    ----------
    mmap_threshold
        Blocks below this size come from the heap (glibc caps it at 32 MiB).
    trim_threshold
        Free memory at the heap top kept before returning it to the kernel.
    """
    if os.environ.get("APPROXPOST_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )


_applied: list = []  # the one result of tune_malloc, once it has run


def ensure_malloc_tuned() -> bool:
    """Run :func:`tune_malloc` the first time only; return whether it was applied."""
    if not _applied:
        _applied.append(tune_malloc())
    return _applied[0]
