"""Allocator settings, each for a measured reason.

:func:`keep_freed_memory` (the server): keep freed heap memory in the process, so request-sized
buffers do not page-fault every time. By default glibc serves allocations above a (dynamic)
threshold with fresh ``mmap`` pages and gives the top of the heap back to the kernel once more
than twice that is free. A server receiving 450 KB observations therefore page-faults every
buffer of every request back in: measured on loopback, that was half of a WebSocket round trip
(0.8 ms -> 0.45 ms with the memory kept; bench/transport_bench.py). Real-time practice is the
same: no page faults on the hot path. The price is a process that keeps up to ``trim_bytes`` of
freed memory around.

:func:`purge_freed_native_memory` (the Rerun recorder): the opposite for a long-running writer
whose freed pages were never reused, so RSS rose for as long as the session ran.

Set ``REFLEX_MALLOC_TUNING=off`` to leave the allocators alone. Only glibc has ``mallopt``;
elsewhere that part is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger("reflex.memory")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
ENV = "REFLEX_MALLOC_TUNING"
DEFAULT_MMAP_BYTES = 16 * 1024 * 1024  # allocations below this come from the reusable heap
DEFAULT_TRIM_BYTES = 64 * 1024 * 1024  # free heap kept before any is returned to the kernel


def keep_freed_memory(mmap_bytes: int = DEFAULT_MMAP_BYTES, trim_bytes: int = DEFAULT_TRIM_BYTES) -> bool:
    """Tune glibc so freed buffers are reused; returns whether the allocator was tuned."""
    if os.environ.get(ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting the mmap threshold also stops glibc from moving it.
    ok = mallopt(M_MMAP_THRESHOLD, mmap_bytes) == 1 and mallopt(M_TRIM_THRESHOLD, trim_bytes) == 1
    if not ok:
        log.debug("mallopt refused the thresholds; allocator left as is")
    return ok


MIMALLOC_PURGE_DELAY = "MIMALLOC_PURGE_DELAY"


def purge_freed_native_memory() -> bool:
    """Have Rerun's native allocator give freed pages back at once; call before ``import rerun``.

    ``rerun_bindings`` allocates with its own mimalloc, not glibc. With mimalloc's default purge
    delay, the pages the recording stream frees (every batch, chunk and encode buffer) are kept for
    reuse, and a long session's RSS kept rising with them while glibc's heap stayed flat: measured
    in a 30 Hz Rerun session, about 160 MiB per hour of RSS against about 45 MiB per hour with the
    delay at 0, the rest being the file footer's index (docs/performance.md). mimalloc reads its
    options from the environment when the library is loaded, so this only works before the first
    ``import rerun`` of the process; it returns whether the option is now in effect. A value the
    user set is kept, and ``REFLEX_MALLOC_TUNING=off`` leaves the allocator alone.
    """
    import sys

    if os.environ.get(ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    if MIMALLOC_PURGE_DELAY in os.environ:
        return os.environ[MIMALLOC_PURGE_DELAY].strip() == "0"
    if "rerun_bindings" in sys.modules:
        return False  # already loaded with its defaults: too late for this process
    os.environ[MIMALLOC_PURGE_DELAY] = "0"
    return True
