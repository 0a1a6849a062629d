"""Keep freed tensor memory in the process instead of returning it to the OS.

glibc's malloc hands large blocks (over 128 KiB, a threshold it adapts up to
32 MiB) back to the operating system when they are freed, and trims the top
of the heap.  A training loop that allocates and frees the same few-MiB
tensors every step then pays fresh page faults on every step.  On the 2-core
CI machines the same KGE training step ran 2.7-5x slower in about half of
the processes (which half depends on the address layout, so timings looked
random).  Fixed thresholds make every process take the fast path; the cost is
that a worker keeps up to ``TRIM_BYTES`` of freed heap for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory"]

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap, never from a fresh mmap (the
#: largest value glibc accepts on 64-bit)
MMAP_BYTES = 32 << 20
#: free memory at the top of the heap is returned only beyond this
TRIM_BYTES = 512 << 20


def keep_freed_memory() -> bool:
    """Set fixed malloc thresholds in this process; False where not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
