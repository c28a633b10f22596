"""``python -m memla_mkeb.progress RUN_DIR... [--expect N]``: how far long runs have got.

For a series that takes many sittings: per run dir, method and edit language, the finished rows
(failed edits among them) against the records expected, and the sequences and batches finished per
method with the records they hold; a sequence still under way shows how many of its edits (then final
rescorings) its saved state holds (:mod:`.seq_state`), i.e. where the next sitting goes on. With
``--expect``, what is left is priced at the mean edit + evaluation seconds of each method's finished
rows, so a long series can be planned in sittings. Reads files only; loads no model.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from . import store
from .seq_state import STATE_DIR


def row_counts(rows: Mapping[str, dict[str, Any]]) -> dict[tuple[str, str], Counter]:
    """(method, source) -> Counter of row statuses, over a run dir's rows (:func:`.store.done_keys`)."""
    out: dict[tuple[str, str], Counter] = {}
    for row in rows.values():
        out.setdefault((row["method"], row["source"]), Counter())[row.get("status", "ok")] += 1
    return out


def row_seconds(rows: Mapping[str, dict[str, Any]],
                cache: Mapping[str, dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """(method, source) -> edit + evaluation seconds of each finished row that recorded them.

    The unedited model's rows reuse the evaluation cached per record (``cache``, the run dir's
    :func:`.store.load_cache`), which every method's row needs first: its time is counted there.
    """
    out: dict[tuple[str, str], list[float]] = {}
    for row in rows.values():
        if row.get("kind") == "unedited" and str(row.get("record_id")) in cache:
            secs = cache[str(row["record_id"])].get("eval_s")
        elif row.get("edit_s") is not None or row.get("eval_s") is not None:
            secs = float(row.get("edit_s") or 0.0) + float(row.get("eval_s") or 0.0)
        else:
            continue
        if secs is not None:
            out.setdefault((row["method"], row["source"]), []).append(float(secs))
    return out


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def open_sequences(run_dir: Path) -> list[tuple[str, int, int]]:
    """(key, edits saved, final rescorings saved) of every sequence state left in ``run_dir``."""
    out = []
    for f in sorted((run_dir / STATE_DIR).glob("*/state.json")):
        try:
            state = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a torn state is redone by the next sitting; nothing to report
        key = str((state.get("identity") or {}).get("key") or f.parent.name)
        out.append((key, len(state.get("steps") or []), len((state.get("final") or {}).get("scores") or [])))
    return out


def finished_groups(groups: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, source) -> (sequences or batches finished, records they hold), sorted by method and source.

    A run of 32 facts in batches of one has 32 batch rows per method: one line per method reads better
    than 32 keys.
    """
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for row in groups:
        n, facts = out.get((row["method"], row["source"]), (0, 0))
        out[(row["method"], row["source"])] = (n + 1, facts + len(row.get("record_ids") or ()))
    return dict(sorted(out.items()))


def report(run_dirs: Sequence[Path], expect: Optional[int] = None) -> str:
    lines = []
    for rd in run_dirs:
        lines.append(f"{rd}:")
        rows = store.done_keys(rd)
        counts, seconds = row_counts(rows), row_seconds(rows, store.load_cache(rd))
        if not counts:
            lines.append("  no rows yet")
        left_total = 0.0
        for (method, source), c in sorted(counts.items()):
            done = sum(c.values())
            of = f" of {expect}" if expect else ""
            failed = f" ({c['error']} failed)" if c.get("error") else ""
            timed = seconds.get((method, source)) or []
            cost = ""
            if timed:
                mean = sum(timed) / len(timed)
                cost = f", {mean / 60:.1f} min/row"
                if expect and done < expect:
                    left_total += mean * (expect - done)
                    cost += f", ~{_duration(mean * (expect - done))} left"
            lines.append(f"  {method:34s} {source}  {done}{of} rows{failed}{cost}")
        if left_total:
            lines.append(f"  left: ~{_duration(left_total)} of one-thread work at these rows' mean edit + evaluation "
                         "time (model loading between sittings not counted); divide by the lanes running it")
        for label, unit, pattern in (("sequences", "edits", store.SEQUENCES_GLOB),
                                     ("batches", "facts", store.BATCHES_GLOB)):
            done_groups = finished_groups(store.done_sequences(rd, pattern).values())
            if done_groups:
                lines.append(f"  {label} finished: " + ", ".join(
                    f"{method} {source} {n} ({facts} {unit})" for (method, source), (n, facts) in done_groups.items()))
        for key, steps, final in open_sequences(rd):
            lines.append(f"  sequence under way: {key}: {steps} edits" + (f", {final} rescored at the end" if final else ""))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", type=Path)
    ap.add_argument("--expect", type=int, default=None, help="records each method should reach")
    args = ap.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not d.is_dir()]
    if missing:
        print(f"memla_mkeb.progress: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(report(args.run_dirs, args.expect))
    return 0


if __name__ == "__main__":
    sys.exit(main())
