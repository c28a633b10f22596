"""Where a benchmark edit's time goes: MEMLA's phases against ROME and MEMIT.

Reads the rows a ``memla-mkeb`` run wrote (one process edits every record with every method,
so MEMLA, ROME and MEMIT are timed on the same records, model and machine) and prints, per
record and in total:

* MEMLA: attribution seconds per identification language and per attributed prompt,
  training seconds and steps, the whole edit;
* ROME, MEMIT (and any other method in the run): the whole edit;
* the ratios MEMLA / ROME and MEMLA / MEMIT, per record and over the sums;
* evaluation of one edit in all 12 languages (seconds, and per language) against MEMLA's edit;
* the process's peak RSS (largest over the rows; each row records the peak so far) and, where the
  rows carry it, each method's largest single-row peak (which method sets the process peak).

    python benchmarks/perf/phases.py runs/main                    # summarise an existing run
    python benchmarks/perf/phases.py --run /tmp/perf --limit 3    # run unedited/MEMLA/ROME/MEMIT first

``--run`` starts ``memla-mkeb`` with ``methods=[unedited,memla,rome,memit] source_langs=[en]`` on
the dev records (resumable like any run), then prints the summary.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

GIB = 1024.0  # MiB per GiB


def read_rows(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(result rows, unedited-cache rows by record id) of every shard, as the harness reads them."""
    from memla_mkeb.store import done_keys, load_cache

    return list(done_keys(run_dir).values()), load_cache(run_dir)


def prompts_per_lang(run_dir: Path, record_ids: list[str]) -> dict[tuple[str, str], int]:
    """How many prompts MEMLA attributes per (record, language): the edit prompt + paraphrases."""
    import yaml

    from memla_plugin.mkeb import load_mkeb

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    path = (cfg.get("data") or {}).get("path")
    records = load_mkeb(None if path in (None, "default") else path, test_ids=record_ids)
    return {
        (str(r.example_id), lang): 1 + len(r.paraphrase_prompts.get(lang, []))
        for r in records
        for lang in r.langs
    }


def _fmt(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


class _Lines:
    """Where the summary's lines go (stdout unless told otherwise)."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def __call__(self, *parts: Any) -> None:
        print(*parts, file=self.out)


def _by_method(rows: list[dict[str, Any]], source: str) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> record id -> the successful row edited in ``source``."""
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("source") == source:
            by_method.setdefault(r["method"], {})[r["record_id"]] = r
    return by_method


def _record_table(p: _Lines, by_method: dict[str, dict[str, dict[str, Any]]], ids: list[str],
                  n_prompts: dict[tuple[str, str], int], baselines: list[str]) -> dict[str, Any]:
    """One line per record (MEMLA's phases, each baseline's edit and ratio, evaluation); returns the sums."""
    memla = by_method["memla"]
    head = f"{'record':>7} {'attr s':>7} {'s/prompt':>8} {'train s':>7} {'steps':>5} {'MEMLA s':>7}"
    for m in baselines:
        head += f" {m.upper() + ' s':>7} {'ratio':>6}"
    p(head + f" {'eval s':>6} {'s/lang':>6} {'eval/edit':>9}")
    totals: dict[str, Any] = {"attr": 0.0, "prompts": 0, "train": 0.0, "memla": 0.0, "eval": 0.0,
                              "paired": {m: [0.0, 0.0] for m in baselines},  # sums over records both edited
                              "ratios": {m: [] for m in baselines}, "eval_ratios": []}
    for rid in ids:
        row = memla[rid]
        st = row.get("edit_stats") or {}
        prompts = sum(n_prompts.get((rid, lang), 0) for lang in st.get("attribution_s_per_lang") or {})
        attr, train = float(st.get("attribution_s") or 0.0), float(st.get("train_s") or 0.0)
        edit, ev = float(row["edit_s"]), float(row["eval_s"])
        n_langs = len(row.get("scores") or {}) or 12
        line = (f"{rid:>7} {attr:7.1f} {_fmt(_ratio(attr, prompts) if prompts else None):>8} {train:7.1f} "
                f"{st.get('steps', '-'):>5} {edit:7.1f}")
        for m in baselines:
            other = by_method[m].get(rid)
            if other is None:
                line += f" {'-':>7} {'-':>6}"
                continue
            totals["ratios"][m].append(edit / other["edit_s"])
            totals["paired"][m][0] += edit
            totals["paired"][m][1] += other["edit_s"]
            line += f" {other['edit_s']:7.1f} {edit / other['edit_s']:6.2f}"
        totals["eval_ratios"].append(ev / edit)
        p(line + f" {ev:6.1f} {ev / n_langs:6.2f} {ev / edit:9.2f}")
        for key, value in (("attr", attr), ("prompts", prompts), ("train", train), ("memla", edit), ("eval", ev)):
            totals[key] += value
    return totals


def _memory_lines(p: _Lines, rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """The process's peak RSS and each method's largest single-row peak."""
    from memla_mkeb.costs import row_peaks

    peaks = [r["peak_rss_mib"] for r in rows if r.get("peak_rss_mib")]
    if peaks:
        result["peak_rss_gib"] = max(peaks) / GIB
        p(f"peak RSS of the run: {max(peaks) / GIB:.2f} GiB ({max(peaks) * 2**20 / 1e9:.2f} GB)")
    else:
        p("peak RSS: not recorded in these rows")
    rows_of: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        rows_of.setdefault(r["method"], []).append(r)
    largest = {m: row_peaks(g).max_gib for m, g in rows_of.items()}
    largest = {m: v for m, v in largest.items() if v is not None}
    if largest:
        result["row_peak_rss_gib"] = largest
        p("largest peak RSS of one row (edit + evaluation + restore), per method: " + ", ".join(
            f"{m} {v:.2f} GiB ({v * 2**30 / 1e9:.2f} GB)" for m, v in sorted(largest.items(), key=lambda kv: -kv[1])))


def summarise(run_dir: Path, source: str = "en", out: Any = sys.stdout) -> dict[str, Any]:
    """Print the per-record and total times of ``run_dir``; returns the headline ratios."""
    rows, cache = read_rows(run_dir)
    by_method = _by_method(rows, source)
    memla = by_method.get("memla", {})
    if not memla:
        raise SystemExit(f"{run_dir}: no successful MEMLA rows with source {source!r}")
    ids = sorted(memla, key=lambda rid: memla[rid].get("record_index", 0))
    baselines = [m for m in ("rome", "memit") if m in by_method]
    p = _Lines(out)
    p(f"run: {run_dir}   source: {source}   records with a MEMLA edit: {len(ids)}")
    p(f"hardware: {next(iter(memla.values())).get('hardware', '?')}")
    totals = _record_table(p, by_method, ids, prompts_per_lang(run_dir, ids), baselines)
    n = len(ids)
    p("")
    p(f"MEMLA edit: {totals['memla'] / n:.1f} s per record (attribution {totals['attr'] / n:.1f} s = "
      f"{_fmt(_ratio(totals['attr'], totals['prompts']))} s per prompt over {totals['prompts']} prompts, "
      f"training {totals['train'] / n:.1f} s)")
    result: dict[str, Any] = {"records": n, "memla_edit_s": totals["memla"] / n}
    for m in baselines:
        (a, b), k = totals["paired"][m], len(totals["ratios"][m])
        if not k:
            continue
        result[f"memla_over_{m}"] = ratio = a / b
        p(f"{m.upper()} edit: {b / k:.1f} s per record on the same {k} records; MEMLA / {m.upper()} = "
          f"{ratio:.2f} over the sums (median per record {statistics.median(totals['ratios'][m]):.2f}); "
          f"MEMLA {'not slower' if ratio <= 1 else 'SLOWER'} than {m.upper()}")
    for m in sorted(m for m in by_method if m not in ("memla", "unedited", *baselines)):
        edits = [r["edit_s"] for r in by_method[m].values()]
        p(f"{m} edit: {sum(edits) / len(edits):.1f} s per record ({len(edits)} records)")
    result["eval_over_memla_edit"] = ev_ratio = totals["eval"] / totals["memla"]
    p(f"evaluation of one edit in all languages: {totals['eval'] / n:.1f} s per record "
      f"({totals['eval'] / n / 12:.2f} s per language); evaluation / MEMLA edit = {ev_ratio:.2f} "
      f"(max per record {max(totals['eval_ratios']):.2f})")
    unedited = [float(c["eval_s"]) for rid, c in cache.items() if "eval_s" in c]
    if unedited:
        p(f"unedited reference (computed once per record, reused by every method): "
          f"{sum(unedited) / len(unedited):.1f} s per record")
    _memory_lines(p, rows, result)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="*", type=Path, help="memla-mkeb run directories to summarise")
    ap.add_argument("--run", type=Path, default=None, help="run the harness into this directory first")
    ap.add_argument("--limit", type=int, default=None, help="with --run: number of dev records")
    ap.add_argument("--source", default="en")
    args = ap.parse_args(argv)
    dirs = list(args.run_dirs)
    if args.run is not None:
        cmd = [os.path.join(os.path.dirname(sys.executable), "memla-mkeb"), f"run_dir={args.run}",
               "methods=[unedited,memla,rome,memit]", f"source_langs=[{args.source}]"]
        if args.limit is not None:
            cmd.append(f"data.limit={args.limit}")
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        dirs.insert(0, args.run)
    if not dirs:
        ap.error("give a run directory or --run DIR")
    if hasattr(os, "getloadavg"):
        print("load average now: " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs")
    for d in dirs:
        summarise(d, args.source)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
