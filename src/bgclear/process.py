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
