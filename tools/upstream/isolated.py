"""Run a check script in a fresh interpreter against an EasyEdit copy, without ``memla_plugin``.

The interpreter is started with ``-I`` (no ``PYTHONPATH``, no current directory on the path)
through :mod:`.checks._bootstrap`, which puts the EasyEdit copy first on ``sys.path`` and makes
``import memla_plugin`` raise ``ImportError`` even for an editable install. Scripts report one
``RESULT_JSON:`` line. Several runs can go at once (``import easyeditor`` alone takes 10 s or more).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence



CHECKS = Path(__file__).resolve().parent / "checks"
BOOTSTRAP = CHECKS / "_bootstrap.py"
MARK = "RESULT_JSON: "


class IsolatedRunError(Exception):
    """A check script failed or printed no result (the message ends with its output)."""


@dataclass
class Job:
    script: Path
    easyedit_root: Path
    workdir: Path
    proc: subprocess.Popen
    started: float


def env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), PYTHONDONTWRITEBYTECODE="1")
    return env


def start(script: str | Path, easyedit_root: Path, workdir: Path, args: Sequence[str] = ()) -> Job:
    """Start ``script`` (a file of :mod:`.checks` or a path) with ``easyedit_root`` first on the path."""
    script = Path(script)
    if not script.is_absolute():
        script = CHECKS / script
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-I", str(BOOTSTRAP), str(Path(easyedit_root).resolve()), str(script), str(workdir), *args]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Job(script, Path(easyedit_root), workdir, proc, time.monotonic())


def finish(job: Job, timeout: float = 900) -> dict:
    """Wait for ``job``; return its result dict (with ``_seconds`` and ``_returncode``) or raise."""
    try:
        out, err = job.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.proc.kill()
        out, err = job.proc.communicate()
        raise IsolatedRunError(f"{job.script.name} timed out after {timeout} s:\n{_tail(out, err)}") from None
    lines = [l for l in out.splitlines() if l.startswith(MARK)]
    if not lines:
        raise IsolatedRunError(f"{job.script.name} printed no result (exit {job.proc.returncode}):\n{_tail(out, err)}")
    result = json.loads(lines[-1][len(MARK):])
    result["_seconds"] = round(time.monotonic() - job.started, 1)
    result["_returncode"] = job.proc.returncode
    result["_stderr_tail"] = err[-3000:]
    return result


def run(script: str | Path, easyedit_root: Path, workdir: Path, args: Sequence[str] = (), timeout: float = 900,
        check: bool = True) -> dict:
    """:func:`start` + :func:`finish`; with ``check`` a non-zero exit raises with the script's output."""
    job = start(script, easyedit_root, workdir, args)
    result = finish(job, timeout)
    if check and result["_returncode"] != 0:
        raise IsolatedRunError(f"{job.script.name} failed (exit {result['_returncode']}):\n{result['_stderr_tail']}")
    return result


def _tail(out: str, err: str, n: int = 4000) -> str:
    return (out[-n // 2:] + "\n--- stderr ---\n" + err[-n:]).strip()


def copy_easyedit(src: Path, dst: Path) -> Path:
    """A working copy of an EasyEdit checkout (without ``.git``, caches and logs) at ``dst``."""
    src, dst = Path(src).resolve(), Path(dst)
    if not (src / "easyeditor" / "__init__.py").is_file():
        raise IsolatedRunError(f"{src} is not an EasyEdit checkout (easyeditor/__init__.py missing)")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "logs", "hugging_cache"))
    return dst


def scratch_dir(prefix: str = "memla-upstream-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
