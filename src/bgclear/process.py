"""Settings for the processes bgclear owns: the CLI, the server and batch workers.

Library users keep their process as it is; the same settings are documented in
the README for them to apply.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("bgclear")


def prefer_small_pages() -> bool:
    """Stop numpy from asking the kernel for transparent huge pages on large arrays.

    numpy marks every large allocation ``MADV_HUGEPAGE``. Where the kernel's THP
    defrag setting is ``madvise`` (a common default), a fault in such memory may
    compact memory synchronously, and right after onnxruntime frees its ~1.5 GB of
    segmentation buffers that made the refinement stage about twice as slow at
    12 MP (0.70 s -> 0.37 s median, docs/BENCHMARKS.md). An explicit
    ``NUMPY_MADVISE_HUGEPAGE`` in the environment wins. Returns whether the setting
    was changed.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return False
    _set_madvise_hugepage(False)
    log.debug("numpy huge-page advice off for this process")
    return True


_libc_trim = None


def release_free_memory() -> bool:
    """Hand the heap pages freed since the last call back to the kernel (glibc ``malloc_trim``).

    A cutout frees hundreds of megabytes of medium-sized buffers from several threads;
    glibc keeps such pages in its per-thread arenas, so a long-running server's resident
    memory creeps up with the mix of photo sizes it has seen (+17 % over a 10-minute
    soak, docs/BENCHMARKS.md) although nothing leaks. Trimming after each cutout costs
    milliseconds. Returns False where there is no glibc (musl, macOS).
    """
    global _libc_trim
    if _libc_trim is None:
        try:
            import ctypes

            _libc_trim = ctypes.CDLL("libc.so.6").malloc_trim
            _libc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc_trim = False
    if not _libc_trim:
        return False
    _libc_trim(0)
    return True
