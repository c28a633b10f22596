"""Record which ROME/MEMIT statistics and which MEND checkpoint a sitting of the series ran with.

The machine's cache does not outlive a session, so the baselines' prerequisites are rebuilt in every
session that needs them (``series.sh``'s prepare step). This appends one line per session to
``prepared.jsonl`` beside it: the sha256 of every statistics file and of the MEND checkpoint, and
whether the MEND training curve repeats, point for point, the one the dev selection recorded
(``../dev_grid/mend_training_curve.csv``). Equal hashes across lines mean the rows of different sessions
used the same bytes; a different hash is said here rather than found later.

    python benchmarks/mkeb/results/protocol2/prepared.py
"""
from __future__ import annotations

import csv
import json
import platform
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV_CURVE = HERE.parent / "dev_grid" / "mend_training_curve.csv"
SKIP = {"seconds"}  # wall-clock time differs between machines; every other field must repeat


def dev_curve() -> list[dict[str, str]]:
    with open(DEV_CURVE, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def curve_differences(curve: list[dict], reference: list[dict[str, str]]) -> list[str]:
    """Points where the new training curve is not the dev one (field by field, 6 decimals as stored)."""
    diffs = []
    if len(curve) != len(reference):
        diffs.append(f"{len(curve)} points, the dev curve has {len(reference)}")
    for new, old in zip(curve, reference):
        for key, value in old.items():
            if key in SKIP or value == "":
                continue
            got = new.get(key)
            same = str(got) == value if key == "split" else got is not None and abs(float(got) - float(value)) < 5e-7
            if not same:
                diffs.append(f"iteration {old['iteration']} {key}: {got} (dev {value})")
    return diffs


def main() -> int:
    from memla_plugin.easyedit.paths import mend_dir, stats_dir  # the folders the harness fills
    from memla_plugin.hashing import file_sha256

    stats = sorted(stats_dir().rglob("*.npz")) if stats_dir().is_dir() else []
    mend = sorted(mend_dir().rglob("provenance.json")) if mend_dir().is_dir() else []
    line: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "stats": {p.name: file_sha256(p) for p in stats},
        "mend": [],
    }
    reference = dev_curve()
    for prov_file in mend:
        prov = json.loads(prov_file.read_text(encoding="utf-8"))
        ckpt = prov_file.parent / "mend.pt"
        diffs = curve_differences(prov.get("curve", []), reference)
        line["mend"].append({
            "dir": prov_file.parent.name,
            "sha256": file_sha256(ckpt) if ckpt.is_file() else None,
            "steps": prov.get("steps"),
            "curve_equals_dev": not diffs,
            "curve_differences": diffs[:10],
        })
    out = HERE / "prepared.jsonl"
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"statistics files: {len(stats)}; MEND checkpoints: {len(mend)}")
    for m in line["mend"]:
        print(f"MEND {m['dir']}: sha256 {m['sha256']}; training curve equals the dev one: {m['curve_equals_dev']}")
        for d in m["curve_differences"]:
            print("   ", d)
    print(f"appended to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
