"""Crash-safe JSONL files in a run directory.

Each finished unit of work is one line, written with a single ``write`` and then flushed
and fsync'ed, so after Ctrl-C or ``kill -9`` the file holds every finished line and at most
one partial last line. Readers ignore that partial line; a writer cuts it off before
appending, so a resumed run neither loses nor duplicates a line.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from memla_plugin.locking import file_lock, lock_path

from .settings import BenchConfigError

RESULTS_GLOB = "results*.jsonl"
SEQUENCES_GLOB = "sequences*.jsonl"
BATCHES_GLOB = "batches*.jsonl"
UNEDITED_GLOB = "unedited_cache*.jsonl"
RESTORE_FAILURES = "restore_failures.jsonl"


class CorruptResultsError(BenchConfigError):
    """A results file has a malformed line that is not the (tolerated) partial last line."""


def row_key(method: str, source: str, record_id: Any) -> str:
    """The identity of one result row: (method, source language, record id)."""
    return f"{method}|{source}|{record_id}"


def sequence_key(n: int, method: str, source: str, first_record_id: Any) -> str:
    """The identity of one sequence row: its length, method, source and first record (never a single-edit key)."""
    return f"seq{n}|{method}|{source}|{first_record_id}"


def batch_key(n: int, method: str, source: str, first_record_id: Any) -> str:
    """The identity of one batch row (batch.size): its size, method, source and first record."""
    return f"batch{n}|{method}|{source}|{first_record_id}"


def _parse_line(path: Path, n: int, line: bytes, required: Sequence[str]) -> dict[str, Any]:
    """One complete line as a row; anything else names the file and line (1-based) and how to fix it."""
    try:
        row = json.loads(line)
    except UnicodeDecodeError as exc:
        raise CorruptResultsError(
            f"{path}:{n}: not UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start} of the line); "
            f"fix or remove that line") from None
    except json.JSONDecodeError as exc:
        raise CorruptResultsError(f"{path}:{n}: malformed JSON line ({exc.msg}); fix or remove that line") from None
    if not isinstance(row, dict):
        raise CorruptResultsError(f"{path}:{n}: a JSON {type(row).__name__}, not a row object; fix or remove that line")
    lacking = [k for k in required if k not in row]
    if lacking:
        raise CorruptResultsError(
            f"{path}:{n}: not a row of this file (no {', '.join(repr(k) for k in lacking)}); fix or remove that line")
    return row


def read_jsonl(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """All complete lines of ``path``; a partial last line (no newline, bad JSON) is skipped.

    Every other line must be a JSON object holding the ``required`` keys, else
    :class:`CorruptResultsError` names the file and the line.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    rows = [_parse_line(path, n, line, required) for n, line in enumerate(lines, 1) if line.strip()]
    if tail.strip():
        try:  # a complete last line without newline (written by hand) still counts
            rows.append(_parse_line(path, len(lines) + 1, tail, required))
        except CorruptResultsError:
            pass  # the line an interrupted writer left behind
    return rows


def iter_files(run_dir: Path, pattern: str) -> list[Path]:
    return sorted(p for p in run_dir.glob(pattern) if p.is_file())


class JsonlWriter:
    """Append-only JSONL with one fsync'ed write per line and an exclusive lock per file."""

    def __init__(self, path: Path, wait: float = 0.0) -> None:
        """``wait``: seconds to wait for another writer (0: fail at once; shared files wait)."""
        self.path = Path(path)
        self.wait = wait
        self._fh: Optional[Any] = None
        self._lock: Optional[Any] = None

    def open(self) -> "JsonlWriter":
        """Take the file's lock (held until :meth:`close`), cut a partial last line, open for appending."""
        from filelock import Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = contextlib.ExitStack()
        try:  # the lock file is RUN_DIR/.locks/<name>.lock, out of the way of the results
            lock.enter_context(file_lock(self.path.parent / ".locks" / self.path.name, timeout=self.wait))
        except Timeout:
            raise BenchConfigError(
                f"another memla-mkeb process is writing {self.path}; wait for it or use another run_dir/shard"
            ) from None
        self._lock = lock
        self._repair()
        self._fh = open(self.path, "ab")
        return self

    def _repair(self) -> None:
        """Cut a partial last line (left by a killed writer) so appends start on a fresh line."""
        if not self.path.is_file():
            return
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # find the last newline; everything after it is the partial line
            pos = size
            block = 1 << 16
            while pos > 0:
                start = max(0, pos - block)
                fh.seek(start)
                chunk = fh.read(pos - start)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    fh.truncate(start + idx + 1)
                    break
                pos = start
            else:
                fh.truncate(0)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, row: dict[str, Any]) -> None:
        assert self._fh is not None, "JsonlWriter.open() first"
        line = (json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=True) + "\n").encode("utf-8")
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "JsonlWriter":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: keys every line of a results / unedited-cache file has (what the runner reads back)
ROW_KEYS = ("key", "method", "source", "record_id", "status")
CACHE_KEYS = ("record_id", "base_id")


def done_keys(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every row already in any results file of ``run_dir`` (all shards), by key."""
    out: dict[str, dict[str, Any]] = {}
    for path in iter_files(run_dir, RESULTS_GLOB):
        for row in read_jsonl(path, ROW_KEYS):
            out.setdefault(row["key"], row)
    return out


def done_sequences(run_dir: Path, pattern: str = SEQUENCES_GLOB) -> dict[str, dict[str, Any]]:
    """Every sequence row (``pattern=BATCHES_GLOB``: batch row) already in ``run_dir`` (all shards), by key."""
    out: dict[str, dict[str, Any]] = {}
    for path in iter_files(run_dir, pattern):
        for row in read_jsonl(path, ROW_KEYS[:3]):
            out.setdefault(row["key"], row)
    return out


def load_cache(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Cached unedited references of ``run_dir`` (all shards) by record id."""
    out: dict[str, dict[str, Any]] = {}
    for path in iter_files(run_dir, UNEDITED_GLOB):
        for row in read_jsonl(path, CACHE_KEYS):
            out.setdefault(str(row["record_id"]), row)
    return out


@contextlib.contextmanager
def run_lock(run_dir: Path, tag: str) -> Iterator[None]:
    """Hold the run dir's lock for shard ``tag`` ('' unsharded) while a run reads and writes it.

    Taken before the run dir is read, so the rows found there are the rows no other run
    will write; a second run on the same run dir and shard is refused at once (nothing read,
    nothing written). Shards of one run dir own different results files and run side by side.
    """
    from filelock import Timeout

    where = Path(run_dir) / ".locks" / f"run{tag}"
    held = contextlib.ExitStack()
    try:
        held.enter_context(file_lock(where, timeout=0))
    except Timeout:
        shard = f" (shard {tag.lstrip('.')})" if tag else ""
        raise BenchConfigError(
            f"run dir {run_dir}{shard} is in use by another memla-mkeb process ({lock_path(where)} is held); "
            f"wait for it to finish or use another run_dir"
        ) from None
    with held:
        yield


def rows_of(paths: Iterable[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for row in read_jsonl(path):
            yield path, row


__all__ = [
    "BATCHES_GLOB",
    "CorruptResultsError",
    "JsonlWriter",
    "RESTORE_FAILURES",
    "RESULTS_GLOB",
    "SEQUENCES_GLOB",
    "UNEDITED_GLOB",
    "batch_key",
    "done_keys",
    "done_sequences",
    "iter_files",
    "load_cache",
    "read_jsonl",
    "row_key",
    "rows_of",
    "run_lock",
    "sequence_key",
]
