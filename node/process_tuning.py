"""Process-wide tuning of the Python runtime for a long-running node: garbage collector and malloc."""

from __future__ import annotations

import contextlib
import ctypes
import gc


def tune_gc() -> None:
    """Keep the cycle collector from pausing the node.

    Under load a node allocates many short-lived, acyclic objects (transactions, votes) that
    reference counting frees; with the default thresholds the collector still ran full
    collections every few seconds, pausing everything (the event loop, the block thread) for
    50-170 ms, which showed as the tail of finality latency. Objects alive after start-up
    (code, genesis, caches) are frozen out of its sight, and young collections run less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_malloc() -> None:
    """Keep freed multi-MB buffers (artifact chunks, blocks) in the heap for reuse (glibc only).

    By default glibc gives every allocation above 128 KiB its own mmap and returns it on free,
    so each 4 MiB chunk buffer is fresh memory that the kernel must fault in and zero: on this
    machine that was about 2 s of system time per GiB fetched. Serving such buffers from the
    heap, and trimming it only above 512 MiB free, costs some retained memory instead.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024)
        libc.mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024)
