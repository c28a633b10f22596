"""Where an unfinished sequence stands, so that a rerun goes on from its last finished edit.

A sequence of N edits can outlast a sitting: 50 ROME edits take about ten hours on one CPU thread.
After every edit (and every record rescored after the last edit) the sequence's state is written to
``RUN_DIR/.sequence_state/<key>/``: ``state.json`` (the steps so far, the final scores so far, the
perplexity before the first edit, the model's flags, the editor's own state) and
``weights.<i>.safetensors`` (the current value of every parameter the edits changed). A rerun with
the same settings and code loads it into the freshly loaded model and continues; the row says at
which edits later sittings took over (``resumed_at``). Seeds are reset before every edit and
evaluation, so the row equals an uninterrupted run's (timings aside).

Only sequences whose whole state is parameter values plus the editor's JSON state are saved: an
edit that wraps the model (EasyEdit's LoRA returns a PEFT model) or hands back an undo callable makes
its sequence restart from the first edit, as before. The directory is removed once the row is
written; it is not a result (``.gitignore``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

STATE_DIR = ".sequence_state"


def _dir_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    """numpy / torch scalars and arrays as JSON values (everything else in a row already is one)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class SequenceState:
    """The saved state of one sequence (``key``), valid only for the same ``identity``.

    ``identity`` holds what must not change between sittings (settings id, code commit, records,
    seed, prompt format); a saved state made under another identity is ignored and replaced.
    """

    def __init__(self, run_dir: Path, key: str, identity: dict[str, Any]) -> None:
        self.dir = Path(run_dir) / STATE_DIR / _dir_name(key)
        self.key = key
        self.identity = json.loads(json.dumps(identity))  # as it reads back from disk
        self._weights_file: Optional[str] = None
        self._values: dict[str, Any] = {}

    def load(self) -> Optional[dict[str, Any]]:
        """The saved state, or None (nothing saved, or saved under another identity)."""
        path = self.dir / "state.json"
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("identity") != self.identity:
            print(f"memla-mkeb: {self.key}: the saved state of this sequence was made with other settings "
                  f"or code; the sequence starts again from its first edit", file=sys.stderr)
            self.clear()
            return None
        self._weights_file = state.get("weights")
        try:
            self._values = self._read_weights()
        except Exception as exc:  # missing or unreadable: nothing can go on from this state
            print(f"memla-mkeb: {self.key}: the saved weights {self._weights_file} cannot be read "
                  f"({type(exc).__name__}: {exc}); the sequence starts again from its first edit", file=sys.stderr)
            self.clear()
            return None
        return state

    def _read_weights(self) -> dict[str, Any]:
        if self._weights_file is None:
            return {}
        from safetensors.torch import load_file

        return load_file(str(self.dir / self._weights_file))

    def weights(self) -> dict[str, Any]:
        """The saved parameter values of the loaded state ({} when it saved none), read by :meth:`load`;
        handed over once (they are copied into the model, no need to hold them twice)."""
        values, self._values = self._values, {}
        return values

    def save(self, state: dict[str, Any], weights: Optional[dict[str, Any]] = None) -> None:
        """Write ``state``; ``weights`` (name -> tensor), when given, replace the saved values.

        The weights go to a new file first and ``state.json`` names it, so a kill at any point
        leaves a state and the weights it was written with."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if weights is not None:
            from safetensors.torch import save_file

            name = f"weights.{len(state.get('steps') or [])}.safetensors"  # saved after each edit
            tmp = self.dir / (name + ".tmp")
            save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items()}, str(tmp))
            os.replace(tmp, self.dir / name)
            self._weights_file = name
        record = {**state, "identity": self.identity, "weights": self._weights_file}
        _write_atomic(self.dir / "state.json", json.dumps(record, default=_plain).encode("utf-8"))
        for old in self.dir.glob("weights.*.safetensors"):
            if old.name != self._weights_file:
                old.unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget the state (after the row is written, or when it cannot be used)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._weights_file, self._values = None, {}
        parent = self.dir.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


__all__ = ["STATE_DIR", "SequenceState"]
