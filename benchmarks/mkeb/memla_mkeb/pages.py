"""Unmapping the untouched file pages of a memory-mapped tensor, so the resident set stops counting them.

The default model's weights stay memory-mapped from its converted safetensors file, and a
process's resident set counts every page of them it has read. The input embedding (151,936 x 896
in fp32: 519 MiB) is a lookup table: a forward pass reads one row per token. Only the harness's
restore check reads all of it, once per edited row, and so leaves the whole table resident under
the next edit's peak.

After a check has passed, a page that is still the file's own page (Linux pagemap: present, and
file-backed rather than a private copy) can be unmapped with ``MADV_DONTNEED``: the next read maps
the same page-cache page again, so no value changes. A page that a write has turned into a private
copy is left mapped, since ``MADV_DONTNEED`` would drop what was written to it.
"""
from __future__ import annotations

import mmap
import sys
from typing import Any

_PRESENT = 1 << 63  # /proc/PID/pagemap bits (Documentation/admin-guide/mm/pagemap.rst)
_FILE_OR_SHARED_ANON = 1 << 61
_MADV_DONTNEED = 4


def _madvise() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.madvise
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def whole_pages(tensor: Any) -> tuple[int, int]:
    """First and one-past-last index of the pages lying wholly inside ``tensor``'s bytes.

    Pages at either end may hold a neighbouring tensor's bytes and are not counted.
    """
    size = mmap.PAGESIZE
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    first, last = -(-start // size), end // size
    return first, max(first, last)


def page_flags(first: int, last: int) -> Any:
    """This process's pagemap entries (uint64) for pages ``first`` to ``last - 1``."""
    import numpy as np

    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        return np.frombuffer(f.read((last - first) * 8), dtype=np.uint64)


def drop_file_pages(tensor: Any) -> int:
    """Unmap the resident pages of ``tensor`` that are unmodified pages of a mapped file.

    Returns the number of bytes unmapped: 0 off Linux, for a tensor not on the CPU, not
    contiguous or not file-backed (an ordinary tensor's pages are private copies and stay put),
    or where ``/proc/self/pagemap`` cannot be read. Call it only while no other thread writes the
    tensor: a write between reading the page flags and unmapping would be lost.
    """
    import numpy as np

    if not sys.platform.startswith("linux") or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return 0
    first, last = whole_pages(tensor)
    if last == first:
        return 0
    try:
        flags = page_flags(first, last)
    except OSError:
        return 0
    wanted = np.uint64(_PRESENT | _FILE_OR_SHARED_ANON)
    droppable = (flags & wanted) == wanted
    if not droppable.any():
        return 0
    # runs of consecutive droppable pages: one madvise call each
    edges = np.flatnonzero(np.diff(np.concatenate(([0], droppable.astype(np.int8), [0]))))
    madvise, size, dropped = _madvise(), mmap.PAGESIZE, 0
    for begin, stop in zip(edges[::2], edges[1::2]):
        if madvise((first + int(begin)) * size, int(stop - begin) * size, _MADV_DONTNEED) == 0:
            dropped += int(stop - begin) * size
    return dropped


__all__ = ["drop_file_pages", "page_flags", "whole_pages"]
