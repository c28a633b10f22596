"""What a run ran on: package versions, CPU/GPU, torch threads, seeds.

Saved per sitting into the run directory so a report can say which hardware produced
which rows (a run may be resumed on another machine).
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

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
    """This process's peak resident set size so far, in MiB (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return round(kib / (2**20 if sys.platform == "darwin" else 2**10), 1)


def release_freed_memory() -> None:
    """Hand memory freed by the last edit back to the OS (glibc keeps freed heap otherwise).

    Without this, the heap one method grew to (MEMLA's attribution batches, say) stays resident
    under the next method's own peak, and the run's peak RSS is their sum rather than the larger.
    """
    import gc

    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        pass


def hardware_label(env: dict[str, Any]) -> str:
    """One line naming the device that did the work, e.g. 'CPU: Xeon ... (2 cores, 2 torch threads)'."""
    dev = str(env.get("device", "cpu"))
    if dev.startswith("cuda") and env.get("gpus"):
        return f"GPU: {env['gpus'][0]} (CPU {env.get('cpu')})"
    return f"CPU: {env.get('cpu')} ({env.get('cpu_count')} cores, {env.get('torch_threads')} torch threads)"


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


__all__ = ["collect", "cpu_model", "easyedit_commit", "hardware_label"]
