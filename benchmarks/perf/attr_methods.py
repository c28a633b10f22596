"""Cheaper attribution against exact 20-step integrated gradients: speed and agreement per prompt.

For MKEB dev records, each identification language's edit prompt and paraphrases with
target_true as MEMLA attributes it (tokenised as given, bare prompts), every setting runs in
one process, interleaved per prompt: seconds per prompt (wall and CPU), the Jaccard index of
its selected neuron set (threshold 0.3) with that of exact IG at m = 20, and the Spearman
rank correlation of its scores with exact IG's over all L x d_ff neurons.

Choice rule, fixed before any run: the cheapest setting (CPU seconds per prompt) whose neuron
sets agree with exact IG at Jaccard >= 0.8 on at least 90% of the prompts.

    python benchmarks/perf/attr_methods.py --records 5                  # ig20 ig10 ig5 ig2 atp
    python benchmarks/perf/attr_methods.py --records 2 --settings ig20,atp
    python benchmarks/perf/attr_methods.py --records 2 --head bf16      # exact IG, bf16 LM head vs fp32
    python benchmarks/perf/attr_methods.py --from-json rows.json        # summary of a run stopped early
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from memla_plugin.architectures import resolve_architecture  # noqa: E402
from memla_plugin.neurons.selection import score_prompt, select_neurons  # noqa: E402
from memla_plugin.neurons.settings import AttributionSettings  # noqa: E402

JACCARD_MIN, SHARE_MIN = 0.8, 0.9


def dev_prompts(n_records: int, langs: list[str]) -> list[tuple[str, str, str, str]]:
    """(record/lang label, prompt kind, prompt, target_true) in the order MEMLA attributes them."""
    from attribution import iter_dev_prompts  # the timing script beside this one: the same prompts

    return [(f"{rid}/{lang}", kind, prompt, target) for rid, lang, kind, prompt, target
            in iter_dev_prompts(langs, n_records)]


def parse_setting(name: str, base: AttributionSettings) -> AttributionSettings:
    """``ig<m>`` (integrated gradients, m steps) or ``atp`` (one-pass estimate)."""
    if name == "atp":
        return dataclasses.replace(base, method="atp")
    if name.startswith("ig") and name[2:].isdigit():
        return dataclasses.replace(base, method="ig", steps=int(name[2:]))
    raise SystemExit(f"unknown setting {name!r}: use ig<steps> or atp")


def jaccard(a: set, b: set) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Rank correlation of two score tensors (ties broken by position: scores are continuous here)."""
    rx = torch.argsort(torch.argsort(x.flatten())).double()
    ry = torch.argsort(torch.argsort(y.flatten())).double()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


class Bf16Head(torch.nn.Module):
    """The LM head's matmul in bfloat16, logits returned in float32 (softmax stays float32)."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.weight = head.weight.detach().to(torch.bfloat16)
        self.bias = None if getattr(head, "bias", None) is None else head.bias.detach().to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias).float()


@contextlib.contextmanager
def head_as(model, kind: str):
    """Swap the output embedding for the duration (``fp32``: leave it)."""
    if kind == "fp32":
        yield
        return
    old = model.get_output_embeddings()
    model.set_output_embeddings(Bf16Head(old))
    try:
        yield
    finally:
        model.set_output_embeddings(old)


def timed_scores(model, tok, arch, prompt, target, settings, head="fp32"):
    w, c = time.perf_counter(), time.process_time()
    with head_as(model, head):
        scores = score_prompt(model, tok, prompt, target, arch, settings)
    return scores, time.perf_counter() - w, time.process_time() - c


def run_table(model, tok, arch, prompts, variants: dict, ref_name: str, threshold: float, out=None) -> dict:
    """Per prompt and variant: seconds, Jaccard and Spearman against ``ref_name``; one line per prompt."""
    rows = {name: [] for name in variants}
    unions: dict = {}
    print(f"{'prompt':16s} {'kind':5s} " + " ".join(f"{n + ' s/cpu/J/rho':>29s}" for n in variants), flush=True)
    for label, kind, prompt, target in prompts:
        got = {name: timed_scores(model, tok, arch, prompt, target, st, hd) for name, (st, hd) in variants.items()}
        ref_scores = got[ref_name][0]
        ref_set = select_neurons(ref_scores, threshold)
        cells = []
        for name, (scores, wall, cpu) in got.items():
            sel = select_neurons(scores, threshold)
            row = dict(label=label, kind=kind, wall=wall, cpu=cpu, n=len(sel), jaccard=jaccard(sel, ref_set),
                       spearman=spearman(scores, ref_scores), identical=sel == ref_set)
            rows[name].append(row)
            u = unions.setdefault((name, label), [set(), set()])
            u[0] |= sel
            u[1] |= ref_set
            cells.append(f"{wall:6.1f} {cpu:6.1f} {row['jaccard']:5.2f} {row['spearman']:6.3f}")
        print(f"{label:16s} {kind:5s} " + " ".join(f"{c:>29s}" for c in cells), flush=True)
        if out:  # as far as it got, should the run be stopped
            Path(out).write_text(json.dumps(dict(rows=rows), indent=1))
    for (name, _label), (sel, ref) in unions.items():
        rows[name].append(dict(union_jaccard=jaccard(sel, ref)))
    return rows


def summarise(rows: dict, ref_name: str) -> list[dict]:
    """One summary line per variant, and the rule's verdict."""
    out = []
    print(f"\n{'setting':10s} {'s/prompt':>8s} {'CPU s':>7s} {'x faster':>8s} {'J mean':>6s} {'J min':>6s} "
          f"{'J>=0.8':>7s} {'same set':>8s} {'rho mean':>8s} {'fact J':>6s}")
    ref_cpu = sum(r["cpu"] for r in rows[ref_name] if "cpu" in r)
    for name, rs in rows.items():
        per = [r for r in rs if "cpu" in r]
        facts = [r["union_jaccard"] for r in rs if "union_jaccard" in r]
        n = len(per)
        s = dict(setting=name, prompts=n, wall=sum(r["wall"] for r in per) / n, cpu=sum(r["cpu"] for r in per) / n,
                 j_mean=sum(r["jaccard"] for r in per) / n, j_min=min(r["jaccard"] for r in per),
                 j_share=sum(r["jaccard"] >= JACCARD_MIN for r in per) / n,
                 identical=sum(r["identical"] for r in per) / n, rho=sum(r["spearman"] for r in per) / n,
                 fact_j=sum(facts) / len(facts) if facts else float("nan"))
        s["speedup"] = ref_cpu / n / s["cpu"]
        out.append(s)
        print(f"{name:10s} {s['wall']:8.2f} {s['cpu']:7.2f} {s['speedup']:8.2f} {s['j_mean']:6.3f} {s['j_min']:6.3f} "
              f"{100 * s['j_share']:6.0f}% {100 * s['identical']:7.0f}% {s['rho']:8.3f} {s['fact_j']:6.3f}")
    ok = [s for s in out if s["setting"] != ref_name and s["j_share"] >= SHARE_MIN]
    pick = min(ok, key=lambda s: s["cpu"]) if ok else None
    verdict = f"{pick['setting']} ({pick['speedup']:.2f}x faster)" if pick else "none qualifies"
    print(f"\nrule: cheapest setting with Jaccard >= {JACCARD_MIN} to {ref_name} on >= {100 * SHARE_MIN:.0f}% of "
          f"prompts -> {verdict}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=5, help="first N shipped dev records")
    ap.add_argument("--langs", default="en,zh,fr")
    ap.add_argument("--settings", default="ig20,ig10,ig5,ig2,atp", help="comma-separated ig<m> / atp; first = reference")
    ap.add_argument("--head", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: compare the first setting with an fp32 head against the same with a bf16 head")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the rows and summary as JSON here")
    ap.add_argument("--from-json", default=None, help="only print the summary of rows a (stopped) run saved with --out")
    args = ap.parse_args(argv)
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())["rows"]
        print(f"{len(next(iter(rows.values())))} prompts read from {args.from_json}")
        summarise(rows, next(iter(rows)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    from memla_plugin.cli.edit import load_hparams
    from memla_plugin.models import load_model

    hp = load_hparams(None)[0]  # the default model's hparams file: batch size, threshold, target form, format
    base = AttributionSettings.from_hparams(hp)
    names = args.settings.split(",")
    if args.head == "bf16":
        variants = {f"{names[0]}": (parse_setting(names[0], base), "fp32"),
                    f"{names[0]}-bf16": (parse_setting(names[0], base), "bf16")}
    else:
        variants = {n: (parse_setting(n, base), "fp32") for n in names}
    t0 = time.perf_counter()
    model, tok = load_model("default")
    arch = resolve_architecture(model)
    print(f"default model loaded in {time.perf_counter() - t0:.1f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"base settings: {base}")
    prompts = dev_prompts(args.records, args.langs.split(","))
    print(f"{len(prompts)} prompts from {args.records} dev records, langs {args.langs}")
    with torch.no_grad():  # page the weights in before anything is timed
        model(input_ids=tok(prompts[0][2], return_tensors="pt")["input_ids"])
    rows = run_table(model, tok, arch, prompts, variants, next(iter(variants)), base.threshold, args.out)
    summary = summarise(rows, next(iter(variants)))
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        Path(args.out).write_text(json.dumps(dict(rows=rows, summary=summary), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
