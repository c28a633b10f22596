"""Move rows out of a run dir's result files into an archive beside them, so that the harness makes them again.

A run dir's rows are only ever appended; when some of them turn out to have been measured wrongly, the
next sitting must see them missing and make them again, while the old ones stay on record. The case
that needs it: the pinned series commit e14d649 measured held-out perplexity on the model exactly as the
editor handed it back, and EasyEdit's LoRA hands back a PEFT wrapper in training mode, so its adapter's
dropout was live (its scores were not affected). series.sh moves those LoRA rows of seq10 and ppl1 aside
and makes them again from seq50's pin, which measures in eval mode:

    python benchmarks/mkeb/results/move_rows.py --method lora --made-with e14d649 \\
        --archive lora_perplexity_dropout_on.jsonl benchmarks/mkeb/results/ppl1/results.shard0of2.jsonl

Only rows of ``--method`` whose ``code.commit`` starts with ``--made-with`` move, so rows made again
with other code stay and a second call moves nothing. Each file is rewritten under its shard's run lock
(the one a harness sitting holds): a file in use by a sitting is refused, never torn. The archive gets
the rows before the file loses them, and its name must not match a file the harness or the report
reads (results*, sequences*, batches*, unedited_cache*). protocol2/mend_rows.py moves MEND's rows with it.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

# the files a run dir's rows live in, and the shard tag their name carries (the harness's run lock name)
ROW_FILE = re.compile(r"(results|sequences|batches)((?:\.shard\d+of\d+)?)\.jsonl")


def shard_tag(path: Path) -> str:
    """``results.shard0of2.jsonl`` -> ``.shard0of2``; ``sequences.jsonl`` -> ``''``."""
    match = ROW_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path} is not a results, sequences or batches file of a run dir")
    return match.group(2)


def move_rows(path: Path, select: Callable[[dict[str, Any]], bool], archive: Path) -> int:
    """Move the rows of ``path`` that ``select`` picks into ``archive`` (appended); rows moved."""
    from memla_mkeb import store

    read = (store.RESULTS_GLOB, store.SEQUENCES_GLOB, store.BATCHES_GLOB, store.UNEDITED_GLOB)
    if any(fnmatch.fnmatchcase(archive.name, pattern) for pattern in read):
        raise ValueError(f"archive {archive.name} would be read as rows by the harness and the report")
    with store.run_lock(path.parent, shard_tag(path)):
        keep, out = [], []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line stays for the harness to handle
                keep.append(line)
                continue
            (out if select(row) else keep).append(line)
        if not out:
            return 0
        with open(archive, "a", encoding="utf-8") as fh:  # archived before the rows leave
            fh.writelines(line if line.endswith("\n") else line + "\n" for line in out)
            fh.flush()
            os.fsync(fh.fileno())
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(keep)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return len(out)


def made_with(method: str, commit: str) -> Callable[[dict[str, Any]], bool]:
    """Select the rows of ``method`` whose code commit starts with ``commit``."""
    def select(row: dict[str, Any]) -> bool:
        code = row.get("code") or {}
        return row.get("method") == method and str(code.get("commit") or "").startswith(commit)
    return select


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="results/sequences/batches files of run dirs")
    ap.add_argument("--method", required=True, help="the method whose rows move (e.g. lora)")
    ap.add_argument("--made-with", required=True, help="code commit (7+ hex digits) the moved rows name")
    ap.add_argument("--archive", required=True, help="file name, in each file's run dir, that keeps the rows")
    args = ap.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{7,40}", args.made_with):
        ap.error(f"--made-with {args.made_with!r}: give a commit of 7 to 40 lowercase hex digits")
    for path in args.files:
        if not path.is_file():
            print(f"move_rows: {path}: no such file; nothing moved", file=sys.stderr)
            continue
        try:
            moved = move_rows(path, made_with(args.method, args.made_with), path.parent / args.archive)
        except Exception as exc:  # a file in use by a sitting, a bad name: say which, stop the step
            print(f"move_rows: {path}: {exc}", file=sys.stderr)
            return 1
        print(f"move_rows: {path}: {moved} {args.method} row(s) made with {args.made_with} moved to {args.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
