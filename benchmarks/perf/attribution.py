"""Attribution speed: the fast path against the straightforward reference, on the same prompts.

Runs both implementations on the same benchmark prompts in one process (interleaved, so
background load hits both alike) and prints, per prompt and in total: wall and CPU time,
the measured speedup, the simple counted work ratio 2(T+k)/(k+1), a finer count that also
charges the LM head, whether the selected neuron sets are identical, and peak RSS.

Prompts are what MEMLA attributes: for MKEB dev records, each identification language's
edit prompt and paraphrases, target = target_true (tokenised as given).

    python benchmarks/perf/attribution.py                       # default model, 3 prompts
    python benchmarks/perf/attribution.py --max-prompts 6 --profile
    python benchmarks/perf/attribution.py --model mid           # random Qwen2, default's shape
    python benchmarks/perf/attribution.py --model tiny --max-prompts 4
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from memla_plugin.architectures import resolve_architecture  # noqa: E402
from memla_plugin.neurons import attribute_prompt, select_neurons  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def load(name: str):
    """(model, tokenizer): the packaged default, or random models for development."""
    if name == "default":
        from memla_plugin.models import load_model

        return load_model("default")
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from memla_plugin.models import default_model_dir

    tok = AutoTokenizer.from_pretrained(default_model_dir())
    torch.manual_seed(0)
    if name == "mid":  # the default model's shape, random weights
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                          num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)
    elif name == "tiny":
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    else:
        raise SystemExit(f"unknown --model {name!r} (default, mid, tiny)")
    return Qwen2ForCausalLM(cfg).eval(), tok


def iter_dev_prompts(langs: list[str], n_records: int | None = None) -> Iterator[tuple[Any, str, str, str, str]]:
    """(record id, lang, prompt kind, prompt, target_true) of MKEB dev records in the order MEMLA attributes them.

    Shared with attr_methods.py so both scripts time the very same prompts.
    """
    from memla_plugin.mkeb import load_mkeb, read_test_ids

    dev = read_test_ids("dev")[:n_records]
    records = {str(r.example_id): r for r in load_mkeb(None, test_ids=dev)}
    for rid in dev:
        rec = records[str(rid)]
        for lang in langs:
            fact = rec.fact(lang)
            for n, prompt in enumerate([fact.question, *rec.paraphrase_prompts.get(lang, [])]):
                yield rid, lang, "edit" if n == 0 else f"para{n}", prompt, fact.target_true


def benchmark_prompts(langs: list[str], max_prompts: int) -> list[tuple[str, str, str]]:
    """(label, prompt, target_true) of the first ``max_prompts`` dev prompts (at least one)."""
    out = []
    for rid, lang, kind, prompt, target in iter_dev_prompts(langs):
        out.append((f"{rid}/{lang}/{kind}", prompt, target))
        if len(out) >= max_prompts:
            break
    return out


def counted_ratio(T: int, k: int, L: int, d: int, d_ff: int, vocab: int, kv_dim: int, steps: int) -> float:
    """Multiply-accumulates of reference / fast for one prompt, LM head and backward included.

    Reference, per layer l: forward of m(T+k) positions through all L layers and the LM head,
    backward through the head and layers l..L-1, plus T full forwards for the AMIG baseline.
    Fast: m·k positions forward and backward through layers l+1..L-1 and the head, plus the
    packed prelude (clean sequence + T(T+1)/2 AMIG tokens through all layers). Attention
    score products, norms and elementwise work are ignored (small here).
    """
    layer = 2 * d * d + 2 * d * kv_dim + 3 * d * d_ff
    head = d * vocab
    ref = sum(steps * (T + k) * ((L * layer + head) + ((L - l) * layer + head)) for l in range(L))
    ref += T * T * (L * layer + head)  # AMIG baseline: one forward per replaced token
    fast = sum(steps * k * 2 * ((L - 1 - l) * layer + head) for l in range(L))
    fast += (T * (T + 1) // 2 + T + k - 1) * L * layer
    return ref / fast


def profile_fast(model, tok, arch, prompt, target, args) -> None:
    """Where the fast path spends its time: op groups by self CPU time, LM head split out."""
    from torch.profiler import ProfilerActivity, profile

    vocab = model.get_output_embeddings().weight.shape[0]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        attribute_prompt(model, tok, prompt, target, arch, steps=args.steps, baseline=args.baseline,
                         batch_size=args.batch_size)
    groups: dict[str, float] = {}
    total = 0.0
    for ev in prof.key_averages(group_by_input_shape=True):
        t = ev.self_cpu_time_total / 1e6
        total += t
        shapes = str(ev.input_shapes)
        name = ev.key
        if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"):
            name = "matmul (LM head)" if str(vocab) in shapes else "matmul (layers)"
        elif "softmax" in name or "logsumexp" in name:
            name = "softmax" + (" (LM head)" if str(vocab) in shapes else "")
        elif "attention" in name:
            name = "attention kernel"
        groups[name] = groups.get(name, 0.0) + t
    print(f"\nprofile of one fast attribution ({total:.1f} s self CPU time):")
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:32s} {t:8.2f} s  {100 * t / total:5.1f}%")


def time_prompts(model, tok, arch, prompts, args, dims, rss_loaded: float) -> tuple[dict[str, float], float, bool]:
    """Fast (and, unless --fast-only, reference) attribution of each prompt, one table line each.

    Returns (total seconds per kind, peak RSS after fast attribution, whether every neuron set matched).
    """
    L, d, d_ff, vocab, kv_dim = dims
    hdr = f"{'prompt':22s} {'T':>3s} {'k':>2s} {'fast s':>8s} {'ref s':>8s} {'fastCPU':>8s} {'refCPU':>8s} " \
          f"{'speedup':>7s} {'cpu x':>6s} {'2(T+k)/(k+1)':>12s} {'count x':>7s} {'same set':>8s} {'#neur':>5s} {'max|d|/max':>10s}"
    print(hdr)
    tot = {"fast": 0.0, "ref": 0.0, "fast_cpu": 0.0, "ref_cpu": 0.0}
    rss_fast = rss_loaded
    all_same = True
    for label, prompt, target in prompts:
        T = len(tok(prompt)["input_ids"])
        k = len(tok(target, add_special_tokens=False)["input_ids"])
        kw = dict(steps=args.steps, baseline=args.baseline, batch_size=args.batch_size)
        w, c = time.perf_counter(), time.process_time()
        fast = attribute_prompt(model, tok, prompt, target, arch, method="fast", **kw)
        tf, cf = time.perf_counter() - w, time.process_time() - c
        rss_fast = max(rss_fast, peak_rss_gib())
        tot["fast"] += tf
        tot["fast_cpu"] += cf
        simple_ratio = 2 * (T + k) / (k + 1)
        count = counted_ratio(T, k, L, d, d_ff, vocab, kv_dim, args.steps)
        if args.fast_only:
            print(f"{label:22s} {T:3d} {k:2d} {tf:8.1f} {'-':>8s} {cf:8.1f} {'-':>8s} {'-':>7s} {'-':>6s} "
                  f"{simple_ratio:12.1f} {count:7.1f} {'-':>8s} {len(select_neurons(fast, args.threshold)):5d}", flush=True)
            continue
        w, c = time.perf_counter(), time.process_time()
        ref = attribute_prompt(model, tok, prompt, target, arch, method="reference", **kw)
        tr, cr = time.perf_counter() - w, time.process_time() - c
        tot["ref"] += tr
        tot["ref_cpu"] += cr
        sf, sr = select_neurons(fast, args.threshold), select_neurons(ref, args.threshold)
        all_same &= sf == sr
        rel = float((fast - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
        print(f"{label:22s} {T:3d} {k:2d} {tf:8.1f} {tr:8.1f} {cf:8.1f} {cr:8.1f} {tr / tf:7.2f} {cr / cf:6.2f} "
              f"{simple_ratio:12.1f} {count:7.1f} {str(sf == sr):>8s} {len(sf):5d} {rel:10.2e}", flush=True)

    return tot, rss_fast, all_same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="default | mid | tiny")
    ap.add_argument("--langs", default="en,zh,fr", help="identification languages to draw prompts from")
    ap.add_argument("--max-prompts", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--baseline", default="amig")
    ap.add_argument("--threshold", type=float, default=0.3)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="path points per batch (default: attr_batch_size of hparams/MEMLA/qwen2.5-0.5b.yaml)")
    ap.add_argument("--fast-only", action="store_true", help="skip the (slow) reference")
    ap.add_argument("--profile", action="store_true", help="profile one fast attribution at the end")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads; on an oversubscribed machine 1 avoids OpenMP barrier stalls")
    args = ap.parse_args(argv)
    if args.batch_size is None:  # what the benchmark and memla-edit run with
        from memla_plugin.cli.edit import load_hparams

        args.batch_size = load_hparams(None)[0].attr_batch_size
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model, tok = load(args.model)
    arch = resolve_architecture(model)
    cfg = model.config
    L, d, d_ff = arch.num_layers, cfg.hidden_size, cfg.intermediate_size
    vocab = model.get_output_embeddings().weight.shape[0]
    kv_dim = cfg.num_key_value_heads * (d // cfg.num_attention_heads)
    rss_loaded = peak_rss_gib()
    print(f"model {args.model}: {cfg.model_type}, L={L}, d={d}, d_ff={d_ff}, vocab={vocab}, "
          f"dtype={next(model.parameters()).dtype}; loaded in {time.perf_counter() - t0:.1f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"settings: steps={args.steps} baseline={args.baseline} threshold={args.threshold} "
          f"batch_size={args.batch_size}")
    prompts = benchmark_prompts(args.langs.split(","), args.max_prompts)
    with torch.no_grad():  # page the weights in before anything is timed
        model(input_ids=tok(prompts[0][1], return_tensors="pt")["input_ids"].to(next(model.parameters()).device))

    tot, rss_fast, all_same = time_prompts(model, tok, arch, prompts, args, (L, d, d_ff, vocab, kv_dim), rss_loaded)

    n = len(prompts)
    print(f"\nfast: {tot['fast'] / n:.1f} s wall ({tot['fast_cpu'] / n:.1f} s CPU) per prompt over {n} prompts")
    if not args.fast_only:
        print(f"reference: {tot['ref'] / n:.1f} s wall ({tot['ref_cpu'] / n:.1f} s CPU) per prompt")
        print(f"measured speedup (total ref / total fast): {tot['ref'] / tot['fast']:.2f}x wall, "
              f"{tot['ref_cpu'] / tot['fast_cpu']:.2f}x CPU time; identical neuron sets on all prompts: {all_same}")
    print(f"peak RSS: {rss_loaded:.2f} GiB after loading, {rss_fast:.2f} GiB after fast attribution"
          + ("" if args.fast_only else f", {peak_rss_gib():.2f} GiB after the reference"))
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.profile:
        label, prompt, target = prompts[0]
        profile_fast(model, tok, arch, prompt, target, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
