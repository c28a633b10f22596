"""Per-row peak memory: a row's peak is its own, the process peak is never lost by the reset."""
from __future__ import annotations

import sys

import pytest

from memla_mkeb.envinfo import PeakMemory, set_malloc_mmap_threshold

MIB = 2**20


def _touch(n_mib: int) -> bytearray:
    buf = bytearray(n_mib * MIB)
    buf[::4096] = b"\x01" * len(buf[::4096])  # make every page resident
    return buf


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the RSS high-water reset is Linux-only")
def test_window_peak_is_per_window_and_process_peak_keeps_the_maximum():
    mem = PeakMemory()
    mem.start_window()
    assert mem.per_window, "writing /proc/self/clear_refs failed on Linux"
    big = _touch(400)
    first_window = mem.window_peak_mib()
    process_after_big = mem.process_peak_mib()
    del big
    mem.start_window()  # a new row: the 400 MiB buffer is gone
    assert mem.window_start_mib is not None and mem.window_start_mib < first_window - 300
    small = _touch(16)
    second_window = mem.window_peak_mib()
    del small
    assert first_window is not None and second_window is not None
    assert first_window - second_window > 300, (first_window, second_window)
    # the reset lowers the kernel's own peak (and ru_maxrss), but not the process peak kept here
    # (1 MiB slack: the kernel syncs its per-thread RSS counters lazily)
    assert mem.process_peak_mib() >= process_after_big - 1 and process_after_big >= first_window - 1


def test_without_a_window_the_process_peak_is_still_reported():
    mem = PeakMemory()
    assert mem.window_peak_mib() is None
    assert mem.process_peak_mib() is None or mem.process_peak_mib() > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_fixed_mmap_threshold_hands_freed_mid_size_blocks_back():
    """After mallopt(M_MMAP_THRESHOLD), a freed 1 MiB block leaves the resident set at once."""
    from memla_mkeb.envinfo import _status_mib

    assert set_malloc_mmap_threshold(128 * 1024)
    blocks = [_touch(1) for _ in range(200)]  # 200 MiB of 1 MiB blocks, each its own mapping now
    held = _status_mib("VmRSS")
    del blocks[::2]  # free every other block: on the heap these would be gaps between live blocks
    after = _status_mib("VmRSS")
    assert held is not None and after is not None and held - after > 80, (held, after)
