"""What a run ran on: package versions, CPU/GPU, torch threads, seeds.

Saved per sitting into the run directory so a report can say which hardware produced
which rows (a run may be resumed on another machine).
"""
from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

PACKAGES = (
    "memla-plugin", "torch", "transformers", "tokenizers", "peft", "accelerate", "hydra-core", "omegaconf",
    "numpy", "safetensors", "gguf", "matplotlib", "pandas", "hydra-submitit-launcher",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def easyedit_commit() -> str | None:
    """Commit of the EasyEdit checkout on sys.path (its COMMIT file), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("easyeditor")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]).parent
    commit = root / "COMMIT"
    if commit.is_file():
        return commit.read_text(encoding="utf-8").strip()[:40]
    head = root / ".git" / "HEAD"
    if head.is_file():
        ref = head.read_text(encoding="utf-8").strip()
        if ref.startswith("ref:"):
            target = root / ".git" / ref.split(" ", 1)[1]
            return target.read_text(encoding="utf-8").strip() if target.is_file() else ref
        return ref
    return "unknown"


def peak_rss_mib() -> float | None:
    """This process's peak resident set size so far, in MiB (None where ``resource`` is missing).

    Once a :class:`PeakMemory` has reset the kernel's high-water mark, this reads only the peak
    since that reset; use ``PeakMemory.process_peak_mib`` for the whole process then.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return round(kib / (2**20 if sys.platform == "darwin" else 2**10), 1)


_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def _status_mib(field: str) -> float | None:
    """A memory line of ``/proc/self/status`` (``VmHWM``, ``VmRSS``), in MiB; None off Linux."""
    try:
        with open(_STATUS, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak RSS per window (one benchmark row) and for the whole process.

    The process peak alone (``ru_maxrss``) only ever grows, so after ROME every later row of a run
    reports ROME's peak. On Linux, writing 5 to ``/proc/self/clear_refs`` resets the high-water
    mark (and with it ``ru_maxrss``), which gives each row its own peak; the process peak is kept
    here as the running maximum over the windows. Where the reset is not available the window
    peak is None and the process peak is ``ru_maxrss``, as before.
    """

    def __init__(self) -> None:
        self._closed_max: float = 0.0  # largest peak of the windows before the current one
        self.per_window = False
        self.window_start_mib: float | None = None  # RSS when the current window began

    def start_window(self) -> None:
        """Begin a new window: later ``window_peak_mib`` calls cover only what follows."""
        self._closed_max = max(self._closed_max, self._hwm() or 0.0)
        self.window_start_mib = _status_mib("VmRSS")
        try:
            with open(_CLEAR_REFS, "w", encoding="ascii") as fh:
                fh.write("5")
            self.per_window = True
        except OSError:  # not Linux, or /proc read-only
            self.per_window = False

    def window_peak_mib(self) -> float | None:
        """Peak RSS since ``start_window`` (None where it cannot be reset)."""
        return self._hwm() if self.per_window else None

    def process_peak_mib(self) -> float | None:
        """Peak RSS of the process so far, over every window."""
        now = self._hwm()
        if now is None:
            return None
        return max(self._closed_max, now)

    @staticmethod
    def _hwm() -> float | None:
        hwm = _status_mib("VmHWM")
        return hwm if hwm is not None else peak_rss_mib()


def _glibc() -> Any:
    """glibc's C library (for malloc_trim / mallopt), or None elsewhere (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand memory freed by the last edit back to the OS (glibc keeps freed heap otherwise).

    Without this, the heap one method grew to (MEMLA's attribution batches, say) stays resident
    under the next method's own peak, and the run's peak RSS is their sum rather than the larger.
    """
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def set_malloc_mmap_threshold(n_bytes: int) -> bool:
    """Serve every allocation of ``n_bytes`` or more with its own mmap, returned to the OS on free.

    glibc starts at 128 KiB but raises the threshold (up to 32 MiB) each time a mapped block is
    freed, so the mid-size tensors of an edit (activations, gradients) end up on the heap, where
    freed gaps between live blocks stay resident: the process peak grows past the working set.
    Fixing the threshold turns that off, at the cost of a fresh mapping (page faults) per
    allocation. Returns False where the C library is not glibc.
    """
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, int(n_bytes)))


def hardware_label(env: dict[str, Any]) -> str:
    """One line naming the device that did the work, e.g. 'CPU: Xeon ... (2 cores, 2 torch threads)'."""
    dev = str(env.get("device", "cpu"))
    if dev.startswith("cuda") and env.get("gpus"):
        return f"GPU: {env['gpus'][0]} (CPU {env.get('cpu')})"
    return f"CPU: {env.get('cpu')} ({env.get('cpu_count')} cores, {env.get('torch_threads')} torch threads)"


def torch_threads_of(label: str) -> Optional[int]:
    """The torch thread count a :func:`hardware_label` line names (None for a GPU line or any other text):
    rows keep only the label, and this reads it back where it was written."""
    found = re.search(r"(\d+) torch threads\)$", str(label))
    return int(found.group(1)) if found else None


def collect(device: str, seed: int) -> dict[str, Any]:
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "gpus": gpus,
        "device": device,
        "seed": seed,
        "packages": {name: _version(name) for name in PACKAGES},
        "easyedit_commit": easyedit_commit(),
    }
    env["hardware"] = hardware_label(env)
    return env


__all__ = ["PeakMemory", "collect", "cpu_model", "easyedit_commit", "hardware_label", "peak_rss_mib",
           "set_malloc_mmap_threshold", "torch_threads_of"]
