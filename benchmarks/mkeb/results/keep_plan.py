"""Keep a copy of a run dir's plan for each set of methods a sitting ran, before the next sitting overwrites it.

The harness writes ``plan<shard>.json`` anew at every sitting, with the settings of the methods that
sitting runs. A series that runs some methods in a later step (``WITHOUT=mend``, then ``ONLY=mend``)
would leave a plan without the others, and the report could no longer check their rows' settings
against the pinned hparams. This copies each live plan file to ``plan<shard>.m-<key>.json``, ``key``
naming its method set, so the run dir keeps one plan per method set; the report reads every
``plan*.json``, the harness only its own ``plan<shard>.json``. The harness writes the same copy itself
since ``memla_mkeb.planning.method_set_plan_name``; this script serves the series pinned to an
older harness (protocol2 runs e14d649), and names its copies the same way (tests check both agree).

    python benchmarks/mkeb/results/keep_plan.py RUN_DIR
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

LIVE = re.compile(r"plan(\.shard\d+of\d+)?\.json")


def kept_name(live: Path, methods: Sequence[str]) -> Path:
    """``plan.shard0of2.json`` with methods ``[a, b]`` -> ``plan.shard0of2.m-<10 hex of a,b>.json``."""
    key = hashlib.sha1(",".join(sorted(methods)).encode("utf-8")).hexdigest()[:10]
    return live.with_name(f"{live.name[:-len('.json')]}.m-{key}.json")


def keep_plans(run_dir: Path) -> list[Path]:
    """Copy every live plan file of ``run_dir`` beside it under its method set's name; return the copies written."""
    written = []
    for live in sorted(Path(run_dir).glob("plan*.json")):
        if not LIVE.fullmatch(live.name):
            continue
        data = live.read_bytes()
        methods = json.loads(data).get("method_ids") or {}
        kept = kept_name(live, list(methods))
        if kept.is_file() and kept.read_bytes() == data:
            continue
        tmp = kept.with_name(kept.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, kept)
        written.append(kept)
    return written


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: keep_plan.py RUN_DIR", file=sys.stderr)
        return 2
    try:
        for path in keep_plans(Path(argv[0])):
            print(f"keep_plan: kept {path}", file=sys.stderr)
    except (OSError, ValueError, AttributeError) as exc:  # never stops a sitting; the report says what it lacks
        print(f"keep_plan: could not keep the plans of {argv[0]} ({exc})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
