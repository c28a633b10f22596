"""Is a loaded model the one that was written? Per-tensor digests and a finite-logits probe.

A converted model directory (the default model's cache) carries a manifest written last by
:mod:`.default_model`. Besides each file's size and sha256 it records the SHA-256 of every
parameter's raw bytes as the model was saved. Loading only fingerprints the files' first and
last MiB (a full re-hash costs a second read of the weights), so damage in the middle of a
file would pass; the benchmark harness hashes every parameter anyway (its restore check,
``memla_mkeb.restore.ParamSnapshot``), and :func:`verify_loaded` compares those digests with
the manifest's: any changed byte of any parameter is caught before a score is computed, at no
extra read. Every load also runs one short forward pass and refuses non-finite logits
(:func:`check_finite_logits`), which catches NaN/inf weights wherever digests are not taken.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

from ..errors import MEMLAError

#: manifest field holding {parameter name: [sha256, shape, dtype]}
DIGESTS_KEY = "param_sha256"
Digest = tuple[str, tuple[int, ...], str]


class CorruptModelError(MEMLAError):
    """The loaded weights are not the ones written (digest mismatch) or give non-finite logits."""


def tensor_digest(t: Any) -> Digest:
    """SHA-256 of a tensor's raw bytes, with its shape and dtype: equal digests mean equal bits
    (up to a SHA-256 collision), at the cost of hashing, not of a second copy of the model."""
    import torch

    flat = t.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
    return hashlib.sha256(memoryview(raw)).hexdigest(), tuple(t.shape), str(t.dtype)


def param_digests(model: Any) -> dict[str, Digest]:
    """Per-parameter digests, two parameters hashed at a time (hashlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    params = list(model.named_parameters())
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((n for n, _ in params), pool.map(tensor_digest, (p for _, p in params))))


def _manifest_path(model_dir: Path) -> Path:
    from .default_model import MANIFEST_NAME

    return Path(model_dir) / MANIFEST_NAME


def recorded_digests(model_dir: Any) -> Optional[dict[str, Digest]]:
    """The digests a model directory's manifest recorded (None: no manifest, or none recorded)."""
    path = _manifest_path(Path(str(model_dir)))
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get(DIGESTS_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(raw, dict):
        return None
    return {name: (str(d[0]), tuple(int(x) for x in d[1]), str(d[2])) for name, d in raw.items()}


def mismatched(expected: dict[str, Digest], actual: dict[str, Digest]) -> Optional[list[str]]:
    """Parameters whose bytes differ; None when the two cannot be compared (other dtype or names)."""
    common = [n for n in actual if n in expected and expected[n][2] == actual[n][2]]
    if not common:
        return None
    return [n for n in common if expected[n] != actual[n]]


def record_digests(model_dir: Path, digests: dict[str, Digest]) -> None:
    """Add ``digests`` to the manifest of ``model_dir`` (atomic rewrite, under the cache's lock)."""
    from ..locking import file_lock

    path = _manifest_path(model_dir)
    with file_lock(model_dir):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest[DIGESTS_KEY] = {n: [d[0], list(d[1]), d[2]] for n, d in digests.items()}
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def check_finite_logits(model: Any, tok: Any, where: str) -> None:
    """One forward pass on a few tokens; NaN or inf logits mean corrupt (or overflowing) weights."""
    import torch

    ids = tok("The capital of France is", add_special_tokens=False)["input_ids"] or [tok.eos_token_id or 0]
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=device)).logits
    bad = int((~torch.isfinite(logits)).sum())
    if bad:
        raise CorruptModelError(
            f"{where}: {bad} of {logits.numel()} logits are NaN or infinite on a test prompt right after "
            f"loading (corrupt weights, or a dtype that overflows)")


def verify_loaded(model_dir: Optional[Any], model: Any, digests: Optional[dict[str, Digest]]) -> str:
    """Compare a loaded model's parameter ``digests`` with those recorded in ``model_dir``'s manifest.

    Raises :class:`CorruptModelError` naming the parameters on a mismatch (the manifest is then
    removed, so the default model's next load rebuilds it). A manifest that predates recorded
    digests has its files re-hashed in full once; if they match, the digests are recorded.
    Returns what was checked ("digests", "recorded", or why nothing was).
    """
    from .default_model import MANIFEST_NAME, check_cache

    if model_dir is None or digests is None:
        return "no digests taken"
    root = Path(str(model_dir))
    if not (root / MANIFEST_NAME).is_file():
        return "no manifest"
    expected = recorded_digests(root)
    if expected is None:
        reason = check_cache(root, verify=True)
        if reason is not None:
            raise CorruptModelError(f"model cache {root}: {reason}{_invalidate(root)}")
        if all(d[2] == "torch.float32" for d in digests.values()):  # the files' own dtype
            record_digests(root, digests)
            return "recorded"
        return "files verified"
    bad = mismatched(expected, digests)
    if bad is None:
        return "not comparable (other dtype)"
    if bad:
        raise CorruptModelError(
            f"model cache {root}: {len(bad)} parameter(s) differ from the digests recorded when it was written "
            f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}){_invalidate(root)}")
    return "digests"


def _invalidate(root: Path) -> str:
    """Drop the default model's completion marker (its next load rebuilds it); say what happens next."""
    from .default_model import default_cache_dir, invalidate_default_model

    if root.resolve() == default_cache_dir().resolve():
        invalidate_default_model()
        return "; the cache is marked for rebuilding: run again to convert it afresh"
    return "; rewrite or replace that directory"


__all__ = [
    "CorruptModelError",
    "DIGESTS_KEY",
    "check_finite_logits",
    "mismatched",
    "param_digests",
    "record_digests",
    "recorded_digests",
    "tensor_digest",
    "verify_loaded",
]
