"""Neuron diagnostics of MEMLA from a neuron cache: set sizes, overlaps, LIKN/LSKN, generic neurons, layers.

Reads the cache the harness shares between runs (authors' JSON format, one directory per
attribution setting) and, optionally, a train-split background (benchmarks/mkeb/build_background.py)
to count generic neurons. Nothing is recomputed.

    # the paper's MEMLA on the dev records (the shared cache of the committed series)
    python benchmarks/mkeb/neuron_diagnostics.py --records dev \\
        --key Qwen2.5-Coder-0.5B-Instruct-Q4_K_M-fp32-1d9614638d18__amig-m20-t0.3
    # how much scoring the target in its trained form changes each record's neurons (same cache)
    python benchmarks/mkeb/neuron_diagnostics.py --records all --langs en --background '' \\
        --neuron-dir benchmarks/mkeb/results/background \\
        --key Qwen2.5-Coder-0.5B-Instruct-Q4_K_M-fp32-1d9614638d18__amig-m20-t0.3-preamble \\
        --compare Qwen2.5-Coder-0.5B-Instruct-Q4_K_M-fp32-1d9614638d18__amig-m20-t0.3-scored-preamble
    # the refined preset: scored target, LIKN shared by 2 of 3, generic filter at 0.1
    python benchmarks/mkeb/neuron_diagnostics.py --records dev --min-langs 2 --filter \\
        --key Qwen2.5-Coder-0.5B-Instruct-Q4_K_M-fp32-1d9614638d18__amig-m20-t0.3-scored
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # memla_mkeb from a checkout

from memla_mkeb import neuron_stats as ns  # noqa: E402

from memla_plugin.neurons import NeuronCache  # noqa: E402
from memla_plugin.neurons.background import Background, generic_neurons  # noqa: E402


def _records(spec: str, cache: NeuronCache, lang: str) -> list[str]:
    if spec == "all":
        return cache.example_ids(lang)
    from memla_plugin.mkeb import read_test_ids

    return [str(r) for r in read_test_ids(spec)]


def diagnose(args: argparse.Namespace) -> dict:
    """Every statistic of the module docstring, as one JSON-able dict."""
    langs = [l for l in args.langs.split(",") if l]
    cache = NeuronCache(args.neuron_dir, args.key)
    wanted = _records(args.records, cache, langs[0])
    sets = {l: {r: cache.get(r, l) for r in wanted if cache.get(r, l) is not None} for l in langs}
    records = ns.common_records(sets, langs)
    out: dict = {"key": args.key, "records": len(records), "langs": langs}
    background = Background(args.background, args.key) if args.background else None
    if background is not None:
        shares, n_bg = background.shares(args.edit_lang, background.languages())
        out["background_facts"] = n_bg
        out["generic_at_share"] = args.max_share
        out["generic_before_filter"] = ns.generic_share(sets, args.edit_lang, records, shares, args.max_share)
        if args.filter:
            drop = {l: generic_neurons(background.shares(l, background.languages())[0], args.max_share) for l in langs}
            sets = {l: {r: s - drop[l] for r, s in sets[l].items()} for l in langs}
            out["filtered_at_share"] = args.max_share
    if args.loo_share is not None:  # the other cached records as each record's background
        everyone = {r: cache.get(r, args.edit_lang) for r in cache.example_ids(args.edit_lang)}
        out["generic_leave_one_out"] = dict(ns.leave_one_out_generic(everyone, records, args.loo_share),
                                            max_share=args.loo_share, background_records=len(everyone) - 1)
    out["sizes"] = ns.set_sizes(sets, langs, records)
    out["overlaps"] = ns.pair_overlaps(sets, langs, records)
    out["intersection"] = ns.likn_lskn(sets, args.edit_lang, langs, records)
    if args.min_langs:
        out[f"shared_by_{args.min_langs}"] = ns.likn_lskn(sets, args.edit_lang, langs, records, args.min_langs)
    if getattr(args, "compare", None):
        other = NeuronCache(args.neuron_dir, args.compare)
        theirs = {l: {r: other.get(r, l) for r in records if other.get(r, l) is not None} for l in langs}
        out["agreement_with"] = {"key": args.compare, **ns.setting_agreement(sets, theirs, langs)}
    edit_sets = [sets[args.edit_lang][r] for r in records]
    out["layers_edit_lang"] = ns.layer_histogram(edit_sets, args.num_layers)
    return out


def to_markdown(d: dict) -> str:
    """A short human summary of :func:`diagnose`'s dict."""
    lines = [f"### {d['key']} ({d['records']} records)", ""]
    lines.append("| set | mean | median | min | max | empty |")
    lines.append("|---|---|---|---|---|---|")
    rows = [(f"{l} neurons", d["sizes"][l]) for l in d["langs"]]
    for rule in [k for k in d if k == "intersection" or k.startswith("shared_by_")]:
        rows += [(f"LIKN ({rule})", d[rule]["likn"]), (f"LSKN ({rule})", d[rule]["lskn"])]
    for name, s in rows:
        lines.append(f"| {name} | {s['mean']:.1f} | {s['median']:.1f} | {s['min']} | {s['max']} | {100 * s['zero_share']:.0f}% |")
    lines.append("")
    lines.append("Overlaps (mean shared neurons, mean Jaccard): " + ", ".join(
        f"{k} {v['mean_shared']:.1f} ({v['mean_jaccard']:.2f})" for k, v in d["overlaps"].items()))
    if "generic_before_filter" in d:
        g = d["generic_before_filter"]
        when = ", counted before the filter" if "filtered_at_share" in d else ""
        lines.append(f"Generic neurons (selected for more than {d['generic_at_share']} of the {d['background_facts']} "
                     f"background facts{when}): "
                     f"{g['n_generic']} neurons; mean share of a record's edit-language neurons {100 * g['mean_share']:.0f}%; "
                     f"records with >= 3: {g['records_with_3_or_more']} of {g['records']}")
    if "generic_leave_one_out" in d:
        g = d["generic_leave_one_out"]
        lines.append(f"Generic neurons (each record against the {g['background_records']} other cached records, "
                     f"share > {g['max_share']}): mean share of a record's edit-language neurons {100 * g['mean_share']:.0f}%; "
                     f"records with >= 3: {g['records_with_3_or_more']} of {g['records']}")
    if "agreement_with" in d:
        a = d["agreement_with"]
        lines.append(f"Same records under {a['key']} (Jaccard of each record's set; mean, share identical): " + ", ".join(
            f"{l} {a[l]['mean']:.2f} ({100 * a[l]['same_set']:.0f}%, n={a[l]['n']})" for l in d["langs"] if a[l].get("n")))
    lines.append("Edit-language neurons per layer: " + " ".join(str(x) for x in d["layers_edit_lang"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neuron-dir", default="benchmarks/mkeb/results/neurons")
    ap.add_argument("--key", required=True, help="the cache's setting directory under --neuron-dir")
    ap.add_argument("--records", default="dev", help="dev, test, train, an id file, or all (every cached record)")
    ap.add_argument("--langs", default="en,zh,fr", help="identification languages")
    ap.add_argument("--edit-lang", default="en")
    ap.add_argument("--min-langs", type=int, default=None, help="also report LIKN shared by at least this many")
    ap.add_argument("--background", default="benchmarks/mkeb/results/background", help="train-split background ('' for none)")
    ap.add_argument("--max-share", type=float, default=0.1)
    ap.add_argument("--filter", action="store_true", help="drop generic neurons before the set statistics")
    ap.add_argument("--loo-share", type=float, default=None,
                    help="also count generic neurons against the other cached records (share above this)")
    ap.add_argument("--compare", default=None,
                    help="another setting directory: how much each record's set changes between the two")
    ap.add_argument("--num-layers", type=int, default=24)
    ap.add_argument("--json", default=None, help="also write the statistics here")
    args = ap.parse_args(argv)
    d = diagnose(args)
    print(to_markdown(d))
    if args.json:
        Path(args.json).write_text(json.dumps(d, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
