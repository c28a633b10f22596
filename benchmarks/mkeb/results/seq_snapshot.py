"""Keep unfinished sequences' saved states in the repository, so a machine that lost its cache goes on.

A sequence saves its state after every edit under ``RUN_DIR/.sequence_state`` (memla_mkeb.seq_state),
which series.sh links into the machine's cache. A sequence of 50 ROME edits takes about 11 h of one
thread, several sessions; a new machine starts with an empty cache, and the sequence would start
again from its first edit. This script writes a compact copy of every unfinished state next to the
rows, to be committed at the end of a session, and puts it back before the lanes start:

    python benchmarks/mkeb/results/seq_snapshot.py save RUN_DIR       # lanes stopped, then commit
    python benchmarks/mkeb/results/seq_snapshot.py restore RUN_DIR    # series.sh, before the sequences

A state is ``state.json`` plus the current value of every parameter the edits changed (and, for LoRA,
the adapter's tensors, which the model does not have: they are stored against zeros). The snapshot
stores those values against the default model's own (``--model``; the cache's one model by default):
each changed tensor as a low-rank part (ROME and MEMIT add one rank-one term per edit and layer), when
that is smaller, plus the exact difference of the float bits that is left, compressed. Decoding uses
only element-wise IEEE operations in a fixed order, so it gives the same bits on any machine; the
SHA-256 of every value is checked on save (by decoding it) and on restore. ``state.json`` is copied
verbatim, so the harness accepts the restored state exactly when it would have accepted the lost one.

Rules: a snapshot is replaced only by a state that got further, restore never overwrites a live state
that got as far or further, and a snapshot is removed once its sequence's row is written. Standalone
(numpy and safetensors only), so it works beside any harness checkout with this state layout.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

STATE_DIR = ".sequence_state"  # memla_mkeb.seq_state.STATE_DIR
ADAPTER_PREFIX = "peft_adapter/"  # memla_mkeb.seq_adapter.ADAPTER_PREFIX: a LoRA adapter's own tensors
SNAPSHOT_DIR = "state_snapshot"
RANK_TOL = 1e-6  # singular values below this fraction of the largest are rounding noise
MAX_RANK_SHARE = 8  # a low-rank part is tried up to min(rows, cols) / 8


class SnapshotError(RuntimeError):
    """A snapshot cannot be written or put back (the message says which and why)."""


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _progress(state: dict[str, Any]) -> int:
    """Edits done plus final rescorings done: how far a sequence got."""
    return len(state.get("steps") or []) + len((state.get("final") or {}).get("scores") or [])


def _finished_keys(run_dir: Path) -> set[str]:
    keys = set()
    for path in sorted(run_dir.glob("sequences*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                keys.add(json.loads(line)["key"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: the harness rewrites that row
    return keys


def default_model(cache: Optional[str] = None) -> Path:
    """The cache's one converted default model (``$MEMLA_CACHE/models/<name>/model.safetensors``)."""
    root = Path(cache or os.environ.get("MEMLA_CACHE") or Path.home() / ".cache" / "memla-plugin") / "models"
    found = sorted(p for p in root.glob("*/model.safetensors"))
    if len(found) != 1:
        raise SnapshotError(f"expected one model under {root}, found {len(found)}: pass --model DIR")
    return found[0].parent


# -- encoding of one tensor ------------------------------------------------------------------------

def _zigzag(diff: np.ndarray) -> np.ndarray:
    d = diff.astype(np.int32).astype(np.int64)  # wraps: two's complement of the uint32 difference
    return ((d << 1) ^ (d >> 63)).astype(np.uint32)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.int64)
    return ((z >> 1) ^ -(z & 1)).astype(np.uint32)  # back to the wrapped uint32 difference


def _pack(z: np.ndarray) -> np.ndarray:
    """Byte planes (all low bytes, then the next...) compressed: small differences leave the high planes zero."""
    planes = np.ascontiguousarray(z.reshape(-1).view(np.uint8).reshape(-1, 4).T).tobytes()
    return np.frombuffer(lzma.compress(planes, preset=6), dtype=np.uint8)


def _unpack(blob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    planes = np.frombuffer(lzma.decompress(blob.tobytes()), dtype=np.uint8).reshape(4, -1)
    return np.ascontiguousarray(planes.T).view(np.uint32).reshape(shape)


def _low_rank_base(base: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """base + a @ b in float64, one outer product at a time (no BLAS: the same bits on every machine)."""
    acc = np.zeros(base.shape, dtype=np.float64)
    for t in range(a.shape[1]):
        acc += np.multiply.outer(a[:, t].astype(np.float64), b[t].astype(np.float64))
    return (base.astype(np.float64) + acc).astype(np.float32)


def encode(base: np.ndarray, value: np.ndarray) -> dict[str, np.ndarray]:
    """``value`` as arrays to store beside ``base`` (same shape, float32): the smaller of a plain bit
    difference and a low-rank part plus the bit difference that is left."""
    if base.dtype != np.float32 or value.dtype != np.float32 or base.shape != value.shape:
        return {"raw": value}
    plain = {"diff": _pack(_zigzag(value.view(np.uint32) - base.view(np.uint32)))}
    if value.ndim != 2:
        return plain
    delta = value.astype(np.float64) - base.astype(np.float64)
    if np.count_nonzero(delta) < delta.size // 4:  # a few rows or columns changed (MEMLA): plain is small
        return plain
    u, s, vt = np.linalg.svd(delta, full_matrices=False)
    rank = int((s > s[0] * RANK_TOL).sum())
    if rank > min(delta.shape) // MAX_RANK_SHARE:
        return plain
    a = (u[:, :rank] * s[:rank]).astype(np.float32)
    b = vt[:rank].astype(np.float32)
    approx = _low_rank_base(base, a, b)
    low = {"a": a, "b": b, "diff": _pack(_zigzag(value.view(np.uint32) - approx.view(np.uint32)))}
    size = sum(x.nbytes for x in low.values())
    return low if size < plain["diff"].nbytes else plain


def decode(base: np.ndarray, stored: dict[str, np.ndarray]) -> np.ndarray:
    if "raw" in stored:
        return stored["raw"]
    start = _low_rank_base(base, stored["a"], stored["b"]) if "a" in stored else base
    return (start.view(np.uint32) + _unzigzag(_unpack(stored["diff"], base.shape))).view(np.float32)


# -- one sequence's state --------------------------------------------------------------------------

def _read_state(state_dir: Path) -> Optional[dict[str, Any]]:
    try:
        state = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


@contextmanager
def _replacing(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to write into; it becomes ``final`` (replaced whole) once written."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _base_tensors(model_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "np") as f:
        missing = [n for n in names if n not in f.keys()]
        if missing:
            raise SnapshotError(f"{model_dir.name} has no parameter {missing[0]}: not the model of this state")
        return {n: f.get_tensor(n) for n in names}


def _bases(model_dir: Path, shapes: dict[str, tuple[Any, Any]]) -> dict[str, np.ndarray]:
    """What each saved value is stored against: the model's own tensor, zeros for an adapter's."""
    own = [n for n in sorted(shapes) if not n.startswith(ADAPTER_PREFIX)]
    bases = _base_tensors(model_dir, own) if own else {}
    bases.update({n: np.zeros(shape, dtype) for n, (shape, dtype) in shapes.items() if n.startswith(ADAPTER_PREFIX)})
    return bases


def _tensors_said(tensors: list[dict[str, Any]]) -> str:
    """The low-rank tensors by name and rank, the rest as a count (a LoRA adapter has about a hundred)."""
    if not tensors:
        return "no weights"
    low = [f"{t['name'].replace('model.layers.', 'L')}: rank {t['rank']}" for t in tensors if t["rank"]]
    rest = len(tensors) - len(low)
    return ", ".join(low + ([f"{rest} tensor{'s' * (rest != 1)} without a low-rank part"] if rest else []))


def snapshot_one(state_dir: Path, out_dir: Path, model_dir: Path) -> dict[str, Any]:
    """Write the snapshot of the live state in ``state_dir`` to ``out_dir`` (replaced whole)."""
    from safetensors.numpy import load_file

    raw_state = (state_dir / "state.json").read_bytes()
    state = json.loads(raw_state)
    values = load_file(str(state_dir / state["weights"])) if state.get("weights") else {}
    bases = _bases(model_dir, {n: (v.shape, v.dtype) for n, v in values.items()})
    arrays: dict[str, np.ndarray] = {}
    tensors = []
    for i, name in enumerate(sorted(values)):
        stored = encode(bases[name], values[name])
        if decode(bases[name], stored).tobytes() != values[name].tobytes():
            raise SnapshotError(f"{state_dir.name}: {name} does not decode to its saved value")
        arrays.update({f"{i}.{k}": v for k, v in stored.items()})
        tensors.append({"name": name, "shape": list(values[name].shape), "dtype": str(values[name].dtype),
                        "parts": sorted(stored), "rank": int(stored["a"].shape[1]) if "a" in stored else 0,
                        "base_sha256": _sha(bases[name]), "sha256": _sha(values[name])})
    manifest = {"key": state.get("identity", {}).get("key"), "progress": _progress(state),
                "edits": len(state.get("steps") or []), "weights_file": state.get("weights"),
                "model": model_dir.name, "tensors": tensors}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with _replacing(out_dir) as tmp:
        (tmp / "state.json.xz").write_bytes(lzma.compress(raw_state, preset=6))
        (tmp / "weights.npz").write_bytes(buf.getvalue())
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def restore_one(snap_dir: Path, state_dir: Path, model_dir: Path) -> dict[str, Any]:
    """Put the snapshot in ``snap_dir`` back as the live state ``state_dir`` (its weights checked bit for bit)."""
    from safetensors.numpy import save_file

    manifest = json.loads((snap_dir / "manifest.json").read_text(encoding="utf-8"))
    raw_state = lzma.decompress((snap_dir / "state.json.xz").read_bytes())
    bases = _bases(model_dir, {t["name"]: (tuple(t["shape"]), np.dtype(t["dtype"])) for t in manifest["tensors"]})
    values = {}
    with np.load(snap_dir / "weights.npz", allow_pickle=False) as npz:
        for i, t in enumerate(manifest["tensors"]):
            if _sha(bases[t["name"]]) != t["base_sha256"]:
                raise SnapshotError(f"{snap_dir.name}: {model_dir.name}'s {t['name']} is not the one the snapshot "
                                    f"was made against")
            value = decode(bases[t["name"]], {p: npz[f"{i}.{p}"] for p in t["parts"]})
            if _sha(value) != t["sha256"]:
                raise SnapshotError(f"{snap_dir.name}: {t['name']} decodes to other bits than were saved")
            values[t["name"]] = value
    with _replacing(state_dir) as tmp:
        if manifest["weights_file"]:
            save_file(values, str(tmp / manifest["weights_file"]))
        (tmp / "state.json").write_bytes(raw_state)
    return manifest


# -- a run dir -------------------------------------------------------------------------------------

def _mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.iterdir()) / 2**20


def _snapshots(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run dir's snapshots (folder, manifest)."""
    return [(p.parent, json.loads(p.read_text(encoding="utf-8")))
            for p in sorted((run_dir / SNAPSHOT_DIR).glob("*/manifest.json"))]


def save(run_dir: Path, model_dir: Optional[Path] = None) -> list[str]:
    """Snapshot every unfinished live state of ``run_dir``; drop the snapshots of finished sequences."""
    live_root, snap_root = run_dir / STATE_DIR, run_dir / SNAPSHOT_DIR
    finished = _finished_keys(run_dir)
    said = []
    kept: dict[str, dict[str, Any]] = {}  # snapshot folder name -> manifest
    for snap_dir, manifest in _snapshots(run_dir):
        if manifest["key"] in finished:
            shutil.rmtree(snap_dir)
            said.append(f"{manifest['key']}: its row is written, snapshot removed")
        else:
            kept[snap_dir.name] = manifest
    for state_dir in sorted(p for p in live_root.glob("*") if p.is_dir()) if live_root.is_dir() else []:
        state = _read_state(state_dir)
        if state is None:
            continue  # the .keep-only cache folder, or a state being written
        key = state.get("identity", {}).get("key")
        if key in finished:
            continue
        prev = kept.get(state_dir.name)
        if prev is not None:
            if prev["progress"] > _progress(state):
                said.append(f"{key}: the snapshot ({prev['progress']}) is further than the live state "
                            f"({_progress(state)}): kept; restore it before the sequence goes on")
                continue
            if prev["progress"] == _progress(state) and prev["weights_file"] == state.get("weights"):
                said.append(f"{key}: snapshot up to date ({prev['edits']} edits)")
                continue
        model_dir = model_dir or default_model()
        out = snap_root / state_dir.name
        manifest = snapshot_one(state_dir, out, model_dir)
        said.append(f"{key}: {manifest['edits']} edits, {_mib(out):.1f} MiB ({_tensors_said(manifest['tensors'])})")
    if snap_root.is_dir() and not any(snap_root.iterdir()):
        snap_root.rmdir()
    return said


def restore(run_dir: Path, model_dir: Optional[Path] = None) -> list[str]:
    """Put back every snapshot of an unfinished sequence whose live state is missing or behind it."""
    live_root = run_dir / STATE_DIR
    finished = _finished_keys(run_dir)
    said = []
    for snap_dir, manifest in _snapshots(run_dir):
        key = manifest["key"]
        if key in finished:
            continue
        live = _read_state(live_root / snap_dir.name)
        if live is not None and _progress(live) >= manifest["progress"]:
            said.append(f"{key}: the live state got as far ({_progress(live)}): left as it is")
            continue
        live_root.mkdir(parents=True, exist_ok=True)
        restore_one(snap_dir, live_root / snap_dir.name, model_dir or default_model())
        said.append(f"{key}: restored with {manifest['edits']} edits done, weights checked bit for bit")
    return said


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("save", "restore"))
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="the model dir the states were made on")
    args = parser.parse_args(argv)
    try:
        for run_dir in args.run_dirs:
            for line in (save if args.action == "save" else restore)(run_dir, args.model):
                print(f"seq_snapshot {args.action} {run_dir.name}: {line}")
    except SnapshotError as exc:
        print(f"seq_snapshot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
