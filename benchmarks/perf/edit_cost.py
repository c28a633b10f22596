"""A whole MEMLA edit with cheaper attribution against exact IG and against ROME, same records, same process.

For each of the first N MKEB dev records (edited in one source language, prompts bare): MEMLA
with exact 20-step IG (the hparams file as it is), MEMLA with a cheaper attribution setting
(``--cheap``: ``atp`` or ``ig<m>``) and EasyEdit's ROME (its cached covariance statistics;
a missing file is computed by memla_plugin.easyedit.prepare_baseline) edit the model one after
the other; each edit is timed, scored with the benchmark's metrics against the unedited model
(ES, PS in the edit language and the mean over the others, NS_cf and loc_acc for locality),
undone and checked bit for bit. Prints per record and the means, and MEMLA / ROME edit time.

    python benchmarks/perf/edit_cost.py --records 3 --cheap atp
    python benchmarks/perf/edit_cost.py --records 3 --cheap ig5 --eval-langs en,zh,fr
    python benchmarks/perf/edit_cost.py --from-json rows.json      # the means of a run stopped early
    python benchmarks/perf/edit_cost.py --from-run-dir benchmarks/mkeb/results/dev_chosen --cheap ig5

``--from-run-dir`` reads the same figures from a benchmark run dir whose sittings ran MEMLA with the
cheap setting (method ``memla_<cheap>``) and ROME on each record in one process (as
``dev_chosen/run.sh`` does), on the records both have. Rows whose attribution came from the neuron
cache (``cache_hits`` > 0) are marked: their edit time leaves the attribution out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "mkeb")]  # run from a checkout without installing

METRICS = ("ES", "PS", "NS_cf", "loc_acc")
HEADER = (f"{'record':>6s} {'method':12s} {'edit s':>7s} {'CPU s':>7s} {'attr s':>6s} "
          + " ".join(f"{k:>7s}" for m in METRICS for k in (m, m[:5] + "_oth")))


def cheap_overrides(name: str) -> dict:
    if name == "atp":
        return {"attr_method": "atp"}
    if name.startswith("ig") and name[2:].isdigit():
        return {"attr_method": "ig", "attr_steps": int(name[2:])}
    raise SystemExit(f"--cheap {name!r}: use atp or ig<steps>")


def make_editors(model, tok, cheap: str, fmt: str) -> dict:
    """name -> editor: exact MEMLA, cheap MEMLA, ROME (hparams files of the default model)."""
    from memla_mkeb.methods import build_hparams, make_editor
    from memla_mkeb.settings import MethodSpec

    from memla_plugin.models import default_model_dir

    hp_dir = ROOT / "hparams"
    specs = [MethodSpec("memla", "memla", "MEMLA", str(hp_dir / "MEMLA" / "qwen2.5-0.5b.yaml")),
             MethodSpec(f"memla_{cheap}", "memla", "MEMLA", str(hp_dir / "MEMLA" / "qwen2.5-0.5b.yaml"),
                        overrides=cheap_overrides(cheap)),
             MethodSpec("rome", "easyedit", "ROME", str(hp_dir / "ROME" / "qwen2.5-0.5b.yaml"), needs_subject_slot=True)]
    editors = {}
    for spec in specs:
        hp = build_hparams(spec, "cpu", None, fmt)
        t0 = time.perf_counter()
        path = str(default_model_dir()) if spec.kind == "easyedit" else None
        editors[spec.name] = make_editor(spec, model, tok, hp, path, prompt_format=fmt)
        print(f"{spec.name}: ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return editors


def summarise_scores(scores: dict, source: str) -> dict:
    """Edit-language value and the mean over the other languages of each metric."""
    out = {}
    for m in METRICS:
        own = scores.get(source, {}).get(m)
        others = [v.get(m) for lang, v in scores.items() if lang != source and v.get(m) is not None]
        out[m] = own
        out[f"{m}_others"] = sum(others) / len(others) if others else None
    return out


def edit_one(name, editor, model, tok, record, source, langs, ref, template, snapshot) -> dict:
    """Edit, score, undo, verify; returns the row."""
    from memla_mkeb.restore import ModelFlags, undo

    from memla_plugin.mkeb.dataset import request_from_record
    from memla_plugin.mkeb.scoring import score_record

    request = request_from_record(record, source)
    flags = ModelFlags.of(model)
    out_model, weights = None, {}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out_model, weights, stats = editor.edit(model, tok, request)
        edit_s, edit_cpu = time.perf_counter() - t0, time.process_time() - c0
        scores = score_record(out_model, tok, record, langs, reference=ref, prompt_template=template,
                              gen_max_new_tokens=0)
    finally:
        undo(model, out_model, weights, flags)
        snapshot.verify(model, f"record {record.example_id}, {name}")
    row = dict(method=name, record=str(record.example_id), edit_s=edit_s, edit_cpu_s=edit_cpu,
               attribution_s=stats.get("attribution_s"), **summarise_scores(scores, source))
    return row


def fmt_row(row: dict) -> str:
    vals = " ".join(f"{'-' if row[k] is None else f'{100 * row[k]:5.1f}':>7s}"
                    for m in METRICS for k in (m, f"{m}_others"))
    attr = "cached" if row.get("cached") else row["attribution_s"]
    if isinstance(attr, float):
        attr = f"{attr:.1f}"
    return (f"{row['record']:>6s} {row['method']:12s} {row['edit_s']:7.1f} {row['edit_cpu_s']:7.1f} "
            f"{'-' if attr is None else attr:>6s} {vals}")


def rows_from_run_dir(run_dir: Path, cheap: str, source: str) -> tuple[list[dict], list[str]]:
    """edit_cost rows from a benchmark run dir: memla, memla_<cheap> and rome on the records all have."""
    from memla_mkeb.store import RESULTS_GLOB, iter_files, read_jsonl

    names = ["memla", f"memla_{cheap}", "rome"]
    found = [r for p in iter_files(Path(run_dir), RESULTS_GLOB) for r in read_jsonl(p)
             if r.get("method") in names and r.get("source") == source and r.get("status") == "ok"]
    names = [n for n in names if any(r["method"] == n for r in found)]
    if f"memla_{cheap}" not in names or "rome" not in names:
        raise SystemExit(f"--from-run-dir {run_dir}: no ok rows of memla_{cheap} and rome for source {source}")
    common = set.intersection(*({str(r["record_id"]) for r in found if r["method"] == n} for n in names))
    rows = []
    for r in sorted(found, key=lambda r: (r["record_index"], names.index(r["method"]))):
        if str(r["record_id"]) not in common:
            continue
        stats = r.get("edit_stats") or {}
        rows.append(dict(method=r["method"], record=str(r["record_id"]), edit_s=r["edit_s"],
                         edit_cpu_s=r.get("edit_cpu_s"), attribution_s=stats.get("attribution_s"),
                         cached=bool(stats.get("cache_hits")), **summarise_scores(r["scores"], source)))
    return rows, names


def report(rows: list[dict], names: list[str], cheap: str) -> None:
    print(f"\nmeans over {len({r['record'] for r in rows})} records:")
    means = {}
    for name in names:
        rs = [r for r in rows if r["method"] == name]
        m = {}
        for k in (k for k in rs[0] if k not in ("method", "record", "cached")):
            vals = [r[k] for r in rs if r[k] is not None]
            m[k] = sum(vals) / len(vals) if vals else None
        m.update(method=name, record="mean", cached=any(r.get("cached") for r in rs))
        means[name] = m
        print(fmt_row(m))
    rome = means["rome"]["edit_s"]
    for name in (n for n in names if n != "rome"):
        note = " (attribution read from the neuron cache, not in the edit time)" if means[name]["cached"] else ""
        print(f"{name} / rome edit time: {means[name]['edit_s'] / rome:.3f}x wall "
              f"({means[name]['edit_cpu_s'] / means['rome']['edit_cpu_s']:.3f}x CPU){note}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=3, help="first N shipped dev records")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first K of them (to add records to a run)")
    ap.add_argument("--source", default="en")
    ap.add_argument("--cheap", default="atp", help="atp or ig<steps>")
    ap.add_argument("--eval-langs", default=None, help="comma-separated (default: all 12)")
    ap.add_argument("--prompt-format", default="bare")
    ap.add_argument("--out", default=None, help="write the rows as JSON here (after every record)")
    ap.add_argument("--from-json", default=None, help="only print the means of rows (stopped) runs saved with --out (comma-separated files)")
    ap.add_argument("--from-run-dir", default=None, help="only print these figures from a benchmark run dir's rows")
    args = ap.parse_args(argv)
    if args.from_run_dir:
        rows, names = rows_from_run_dir(Path(args.from_run_dir), args.cheap, args.source)
        print(HEADER)
        for row in rows:
            print(fmt_row(row))
        report(rows, names, args.cheap)
        return 0
    if args.from_json:
        rows = [r for f in args.from_json.split(",") for r in json.loads(Path(f).read_text())]
        names = list(dict.fromkeys(r["method"] for r in rows))
        report(rows, names, names[1].split("_", 1)[1])
        return 0
    import torch
    from memla_mkeb.restore import ParamSnapshot

    from memla_plugin.mkeb import load_mkeb, read_test_ids
    from memla_plugin.mkeb.reference import unedited_reference
    from memla_plugin.models import load_model
    from memla_plugin.prompt_format import prompt_template

    model, tok = load_model("default")
    snapshot = ParamSnapshot(model, "sha256")
    template = prompt_template(tok, args.prompt_format)
    ids = read_test_ids("dev")[args.skip : args.records]
    records = {str(r.example_id): r for r in load_mkeb(None, test_ids=ids)}
    langs = args.eval_langs.split(",") if args.eval_langs else None
    editors = make_editors(model, tok, args.cheap, args.prompt_format)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(HEADER, flush=True)
    rows = []
    for rid in ids:
        record = records[str(rid)]
        ref = unedited_reference(model, tok, record, langs, prompt_template=template, gen_max_new_tokens=0)
        for name, editor in editors.items():
            rows.append(edit_one(name, editor, model, tok, record, args.source, langs, ref, template, snapshot))
            print(fmt_row(rows[-1]), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=1))
    report(rows, list(editors), args.cheap)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
