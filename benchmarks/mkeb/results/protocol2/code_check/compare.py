"""Compare re-run rows (pinned code only) with the series' rows of the same method and record.

    python benchmarks/mkeb/results/protocol2/code_check/compare.py

Prints, per re-run row, the commit each row records, whether the scores are identical and which
edit_stats fields differ (timings are expected to).
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERIES = HERE.parent / "en"

series = {}
for path in sorted(SERIES.glob("results*.jsonl")):
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        series[(row["method"], row["record_id"])] = row
for path in sorted(HERE.glob("rerun_*.jsonl")):
    for line in path.read_text(encoding="utf-8").splitlines():
        new = json.loads(line)
        old = series[(new["method"], new["record_id"])]
        same = json.dumps(new["scores"], sort_keys=True) == json.dumps(old["scores"], sort_keys=True)
        a, b = new.get("edit_stats") or {}, old.get("edit_stats") or {}
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print(f"{new['method']:14} en #{new['record_id']:>5}: re-run {new['code']['commit'][:7]} "
              f"(dirty {new['code']['dirty']}), series {old['code']['commit'][:7]} (dirty {old['code']['dirty']}); "
              f"scores identical: {same}; edit_stats differing: {', '.join(differ) or 'none'}")
