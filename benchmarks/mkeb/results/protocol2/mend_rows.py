"""Keep the series' MEND rows made with one MEND checkpoint, and say which.

MEND's hypernetwork is trained on the machine in every session whose cache lacks it (series.sh's
prepare step), and its training does not repeat across sittings: float rounding that differs between
sittings (the unedited model's nll differs in the 6th digit at iteration 10) grows over 120 steps. The
first line of prepared.jsonl (2026-12-02) ends at validation edit accuracy 0.42 where the dev curve
ended at 0.50, with the same settings. Rows made with different checkpoints would mix several MEND
models under one name, so series.sh makes all MEND rows in one session at the end (its ``mend`` step,
both lanes waiting for each other first). Before they start, lane 0 runs this:

    python benchmarks/mkeb/results/protocol2/mend_rows.py en zh_fr

It hashes the MEND checkpoint(s) in the cache and compares them with ``mend_checkpoint.json`` (the
checkpoint the run dirs' MEND rows were made with). When they differ, or nothing is recorded, every MEND
row of the named run dirs is moved out of the result files into ``mend_other_checkpoints.jsonl`` of the
same run dir (kept, not deleted; the report does not read it), so that the harness makes them again
with this checkpoint, and the new checkpoint is recorded. When they are equal (the same session, or a
machine that kept its cache), nothing moves. Each result file is rewritten under its shard's run lock.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARKER = HERE / "mend_checkpoint.json"
ARCHIVE = "mend_other_checkpoints.jsonl"


def current_checkpoints() -> dict[str, str]:
    """sha256 of every MEND checkpoint in the cache, by folder name."""
    from memla_plugin.easyedit.paths import mend_dir
    from memla_plugin.hashing import file_sha256

    found = sorted(mend_dir().rglob("mend.pt")) if mend_dir().is_dir() else []
    return {p.parent.name: file_sha256(p) for p in found}


def _move_rows_module():
    """../move_rows.py, loaded by path: the series runs scripts with PYTHONSAFEPATH set."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("move_rows", HERE.parent / "move_rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def move_mend_rows(run_dir: Path, method: str = "mend") -> int:
    """Move ``method``'s rows out of every results*.jsonl of ``run_dir`` into its archive; rows moved."""
    from memla_mkeb import store

    move_rows = _move_rows_module().move_rows
    return sum(move_rows(path, lambda row: row.get("method") == method, run_dir / ARCHIVE)
               for path in sorted(run_dir.glob(store.RESULTS_GLOB)))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="+", help="run dirs under protocol2 (e.g. en zh_fr)")
    ap.add_argument("--root", type=Path, default=Path(os.environ.get("PROTOCOL2_DIR", HERE)),
                    help="folder holding the run dirs (default: $PROTOCOL2_DIR or this folder)")
    args = ap.parse_args(argv)
    checkpoints = current_checkpoints()
    if not checkpoints:
        print("mend_rows: no MEND checkpoint in the cache; run the prepare step first", file=sys.stderr)
        return 2
    marker = args.root / MARKER.name
    recorded = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}
    if recorded.get("checkpoints") == checkpoints:
        print(f"mend_rows: the MEND rows were made with the cached checkpoint ({recorded['since']}); nothing moved")
        return 0
    moved = {name: move_mend_rows(args.root / name) for name in args.run_dirs if (args.root / name).is_dir()}
    marker.write_text(json.dumps({"checkpoints": checkpoints, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "rows_moved_then": moved}, indent=1) + "\n", encoding="utf-8")
    print(f"mend_rows: checkpoint {checkpoints} recorded in {marker}; MEND rows moved to {ARCHIVE}: {moved}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
