"""Keep freed memory for reuse in a batch job (glibc only; elsewhere nothing changes).

A clean job allocates and frees buffers of about a batch's size, some 100 MB, over and over:
decompressed blocks, joined lines, compressor output. glibc serves every allocation above
its mmap threshold (at most 32 MB) with fresh pages from the kernel and gives them back on
free, so each batch pays again for faulting its pages in: on the stage 2 benchmark that was
a sixth of the run. Raising the mmap and trim thresholds keeps those pages in the process
for the next batch. The price: up to TRIM_THRESHOLD of freed memory may stay mapped (the
benchmark stayed under 1.2 GB at its peak). polars (jemalloc) and pyarrow (mimalloc) have
allocators of their own, which this does not touch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30  # allocations below 1 GiB come from the heap, and are reused
TRIM_THRESHOLD = 512 << 20  # free memory at the top of the heap is kept up to 512 MB
TOP_PAD = 256 << 20  # the heap grows 256 MB at a time, not page by page


@functools.cache
def reuse_freed_memory() -> bool:
    """Tune glibc for large, repeated allocations (once per process); False where it is not
    glibc, or the call fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    done = all(mallopt(param, value) == 1 for param, value in settings)
    log.debug("glibc malloc tuned for batch-sized allocations: %s", done)
    return done
