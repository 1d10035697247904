"""The memory allocator setting of the entry points: keep freed tensor memory in the heap.

A training step on CPU allocates and frees the same large activations (megabytes each)
every step. With glibc's default settings a block that large is given its own ``mmap``
and returned to the system when freed, so the next step's tensor of the same size starts
on fresh pages and pays a page fault per 4 KiB page on first touch: on the ``mosi`` preset
about a quarter of a training step went to elementwise kernels writing into new pages
(``benchmarks/train_step.py``). Raising glibc's mmap and trim thresholds keeps those
blocks in the heap, where the next step reuses them.

:func:`keep_freed_memory` does that through ``mallopt`` for the running process; the
entry points (the ``dhmd`` command, the scripts in ``examples/``) call it first thing,
and so can any program that trains with the library::

    from dhmd_graph.allocator import keep_freed_memory
    keep_freed_memory()

The cost: memory the process freed stays its own until it exits (its resident size stays
at its peak instead of shrinking between steps). ``DHMD_MALLOC=system`` (or any C library
other than glibc, where the call does nothing) keeps the allocator's own settings. The
library itself never calls it on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["ENVIRONMENT_VARIABLE", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

ENVIRONMENT_VARIABLE = "DHMD_MALLOC"
"""``system`` keeps the C library's allocator settings unchanged."""
MMAP_THRESHOLD = 256 * 2**20
"""Blocks below this size (256 MiB) come from the heap, not from their own ``mmap``."""
TRIM_THRESHOLD = 1024 * 2**20
"""Free memory at the top of the heap is returned to the system only above 1 GiB."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`) for this process, so freed tensors' memory is reused.

    Returns:
        bool: Whether the settings were changed: :obj:`False` with
        ``DHMD_MALLOC=system`` or without glibc's ``mallopt``.
    """
    if os.environ.get(ENVIRONMENT_VARIABLE, "").lower() == "system":
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
