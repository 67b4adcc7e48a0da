"""Returning freed memory to the operating system between the stages of an analysis (issue 15).

A stage of the pipeline (checks, each step, each output writer) builds large temporary frames
and frees them when it ends. Freed memory is not always returned to the operating system: glibc's
``malloc`` keeps freed blocks of its heap for reuse (the heap only shrinks from its top), Python
keeps its small-object arenas, and reference cycles wait for the cyclic garbage collector. The
peak resident set size of a long analysis then grows stage by stage with memory nobody uses
(measured at 20,000 subjects: the exposure/safety step left about 670 MB of freed heap resident;
docs/design.md, "Fast and lean, fourth pass").

:func:`release_memory` runs the cyclic collector, then asks glibc to return every free page of
its heaps (``malloc_trim(0)``, which since glibc 2.8 also releases whole free pages inside the
heap, not only at its top) and Arrow's memory pool to release its unused memory. It changes no
value: only which freed pages stay mapped. On a C library without ``malloc_trim`` (macOS, musl)
only the collector and Arrow's pool run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None when the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


#: Resident size above which :func:`release_memory` also runs the full cyclic collector: a full
#: collection costs 0.1-0.2 s of CPU in an analysis process (all of matplotlib, scikit-learn and
#: scipy's objects are traversed), about 2.5 s over a demo analysis, while below this size
#: there is little to win (measured on the demo study and at 20,000 subjects, issue 15).
COLLECT_ABOVE_BYTES = 1 << 30


def resident_bytes() -> int | None:
    """The process's resident set size in bytes (Linux ``/proc/self/statm``), None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * _page_size()


@functools.cache
def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


def release_memory() -> None:
    """Hand freed memory back to the operating system (see module docstring); the full cyclic
    collector runs first when the process holds more than :data:`COLLECT_ABOVE_BYTES`."""
    rss = resident_bytes()
    if rss is not None and rss > COLLECT_ABOVE_BYTES:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    pa = sys.modules.get("pyarrow")  # only when something has imported it: never imports pyarrow
    if pa is not None:
        pa.default_memory_pool().release_unused()
