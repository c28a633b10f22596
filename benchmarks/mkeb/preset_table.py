"""The preset's ablation table from a run dir: each switch on and off, with MEMLA and the unedited model.

Per method, over the records every listed method has (source ``en``): ES on the edit language,
ES/PS/NS_cf/loc_acc on the other languages, the composite (harmonic mean of the means of ES,
PS and NS_cf on the other languages, :mod:`memla_mkeb.composite`) with its bootstrap interval,
the composite's paired difference against the full preset, and the mean LIKN / LSKN sizes the
edits trained. Failed edits are counted apart, never averaged in.

    python benchmarks/mkeb/preset_table.py benchmarks/mkeb/results/dev_chosen --preset memla_refined
    benchmarks/mkeb/results/dev_chosen/run.sh preset     # the same, with the catalog's switch list
    ... --decide     # and the keep rule's verdict per switch
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # memla_mkeb from a checkout

from memla_mkeb.composite import PARTS, composite_difference, composite_estimate, record_triples  # noqa: E402
from memla_mkeb.stats import record_value  # noqa: E402

METRICS = (("ES", "e2e"), ("ES", "others"), ("PS", "others"), ("NS_cf", "others"), ("loc_acc", "others"))


def _mean(values: list) -> str:
    vals = [v for v in values if v is not None]
    return f"{100 * statistics.fmean(vals):.1f}" if vals else "n/a"


def table(rows: list[dict], methods: list[str], preset: str, source: str, n_boot: int, seed: int,
          pairwise: bool = False) -> str:
    """Markdown table of :mod:`preset_table` (see the module docstring)."""
    by = {m: [r for r in rows if r["method"] == m and r.get("source", source) == source] for m in methods}
    ok = {m: [r for r in rs if r.get("status", "ok") == "ok"] for m, rs in by.items()}
    have = [rs for rs in ok.values() if rs]  # a method without rows yet is listed, not intersected
    common = set.intersection(*(set(str(r["record_id"]) for r in rs) for rs in have)) if have else set()
    if pairwise:  # each row on the records it shares with the preset (the preset's row: all of its records)
        mine = {str(r["record_id"]) for r in ok.get(preset, [])}
    head = ["method", "records", "failed"] + [f"{k} {v}" for k, v in METRICS] + ["composite [95% CI]",
                                                                                 f"vs {preset}", "LIKN", "LSKN"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_ids = mine if pairwise else common
    base = record_triples([r for r in ok.get(preset, []) if str(r["record_id"]) in base_ids], source, "others")
    for m in methods:
        keep = (mine if m != preset else {str(r["record_id"]) for r in ok[m]}) if pairwise else common
        rs = [r for r in ok[m] if str(r["record_id"]) in keep]
        if not by[m]:
            out.append("| " + " | ".join([m, "0", "0"] + ["not run"] * (len(head) - 3)) + " |")
            continue
        cells = [m, str(len(rs)), str(len(by[m]) - len(ok[m]))]
        cells += [_mean([record_value(r["scores"], source, k, v) for r in rs]) for k, v in METRICS]
        tri = record_triples(rs, source, "others", PARTS)
        est = composite_estimate(tri, label=m, seed=seed, n_boot=n_boot)
        cells.append(f"{100 * est.mean:.1f} [{100 * est.lo:.1f}, {100 * est.hi:.1f}]" if est.n and est.mean is not None else "n/a")
        if m != preset and base and tri:
            d, is_interval = composite_difference(tri, base, label=m, seed=seed, n_boot=n_boot)
            cells.append(f"{100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}]" if is_interval else "n/a")
        else:
            cells.append("")
        stats = [r.get("edit_stats") or {} for r in rs]
        likn = [s.get("n_likn_trained", s.get("n_likn")) for s in stats if s]
        lskn = [s.get("n_lskn_trained", s.get("n_lskn")) for s in stats if s]
        cells.append(f"{statistics.fmean(likn):.1f}" if likn else "")
        cells.append(f"{statistics.fmean(lskn):.1f}" if lskn else "")
        out.append("| " + " | ".join(cells) + " |")
    if pairwise:
        where = f"each row on the records it shares with {preset} ({preset}: its {len(mine)} records)"
    else:
        where = f"{len(common)} records common to every method with rows"
    return "\n".join(out) + f"\n\n{where}; source {source}; metrics in %.\n"


def decisions(rows: list[dict], methods: list[str], preset: str, source: str, n_boot: int,
              seed: int) -> list[tuple[str, int, float | None, bool | None]]:
    """The keep rule (benchmarks/mkeb/README.md, "Which switches the refined preset keeps"): per
    ablation ``<preset>_no_<switch>``, the paired composite of ``preset`` minus the ablation's (others
    view) over the records both have; the switch stays when it is above 0. (switch, records, diff, stays);
    stays is None while the ablation has no rows shared with the preset."""
    ok = [r for r in rows if r.get("status", "ok") == "ok" and r.get("source", source) == source]
    base = record_triples([r for r in ok if r["method"] == preset], source, "others")
    out = []
    for m in methods:
        if not m.startswith(f"{preset}_no_"):
            continue
        switch = m[len(f"{preset}_no_"):]
        tri = record_triples([r for r in ok if r["method"] == m], source, "others")
        n = len(set(tri) & set(base))
        if n == 0:
            out.append((switch, 0, None, None))
            continue
        d, _ = composite_difference(base, tri, label=f"keep|{m}", seed=seed, n_boot=n_boot)
        out.append((switch, n, d.mean, d.mean is not None and d.mean > 0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", help="run dirs whose rows are pooled (one row per method and record)")
    ap.add_argument("--preset", default="memla_refined")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method of the run dir)")
    ap.add_argument("--source", default="en")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairwise", action="store_true",
                    help="each row on the records it shares with the preset, not on the records all methods share")
    ap.add_argument("--decide", action="store_true",
                    help="also print the keep rule's verdict per switch (preset minus its ablation, others view)")
    args = ap.parse_args(argv)
    files = [f for d in args.run_dirs for f in sorted(Path(d).glob("results*.jsonl"))]  # shards' files too
    rows = [json.loads(l) for f in files for l in f.read_text("utf-8").splitlines() if l.strip()]
    methods = args.methods.split(",") if args.methods else list(dict.fromkeys(r["method"] for r in rows))
    print(table(rows, methods, args.preset, args.source, args.n_boot, args.seed, args.pairwise))
    if args.decide:
        n_preset = len({str(r["record_id"]) for r in rows if r["method"] == args.preset})
        print(f"Keep rule ({args.preset} minus each ablation, composite, others view, paired; "
              f"{args.preset} has {n_preset} records):")
        for switch, n, diff, stays in decisions(rows, methods, args.preset, args.source, args.n_boot, args.seed):
            verdict = "no rows yet" if diff is None else ("stays on" if stays else "turned off")
            value = "n/a" if diff is None else f"{100 * diff:+.1f}"
            print(f"  {switch}: {value} on {n} records -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
