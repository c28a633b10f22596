"""What one held-out perplexity measurement (the harness's ``perplexity.*``) costs on a model.

The texts are the ones a run with ``perplexity.enabled=true`` measures (the harness's own settings,
so ``--set perplexity.last=20`` shows the cheaper variant); the script times one measurement per batch
size and prints wall and CPU seconds, tokens, tokens per second and the mean perplexity over languages.
A harness row with perplexity pays one such measurement per edit (a sequence: one after all N edits).

    python benchmarks/perf/perplexity_cost.py                      # default model, batch size 8, 1 thread
    python benchmarks/perf/perplexity_cost.py --batch-sizes 1,8,32 --threads 2
    python benchmarks/perf/perplexity_cost.py --set perplexity.last=20
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "mkeb")]  # run from a checkout without installing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="model name or path (memla_plugin.models.load_model)")
    ap.add_argument("--batch-sizes", default="8", help="comma-separated perplexity.batch_size values to time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the benchmark lanes use 1)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="harness override for the texts (perplexity.last, perplexity.ids, ...)")
    args = ap.parse_args(argv)

    import torch

    from memla_mkeb.app import compose_config
    from memla_mkeb.planning import perplexity_records
    from memla_plugin.languages import MKEB_LANGS
    from memla_plugin.mkeb.loader import resolve_data_path
    from memla_plugin.mkeb.perplexity import heldout_texts, perplexity, summary
    from memla_plugin.models.loading import load_model

    torch.set_num_threads(args.threads)
    cfg = compose_config(["perplexity.enabled=true", *args.set])
    held, _ = perplexity_records(cfg, resolve_data_path(None), [])  # no evaluated records: nothing can overlap
    texts = heldout_texts(held.records, list(MKEB_LANGS))
    model, tok = load_model(args.model)
    n_texts = sum(len(v) for v in texts.values())
    print(f"{n_texts} texts in {len(texts)} languages from {len(held.records)} records; torch threads {args.threads}")
    print(f"{'batch':>5s} {'wall s':>8s} {'CPU s':>8s} {'tokens':>7s} {'tok/s':>7s} {'mean ppl':>9s}")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        wall, cpu = time.perf_counter(), time.process_time()
        per_lang = perplexity(model, tok, texts, batch_size=bs, device="cpu")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        tokens = sum(p.tokens for p in per_lang.values())
        print(f"{bs:5d} {wall:8.1f} {cpu:8.1f} {tokens:7d} {tokens / wall:7.1f} {summary(per_lang)['mean_ppl']:9.3f}")
    return 0


if __name__ == "__main__":
    from memla_plugin.errors import MEMLAError

    try:
        raise SystemExit(main())
    except MEMLAError as e:  # bad model path, harness setting: say which, no traceback
        print(f"perplexity_cost: {e}", file=sys.stderr)
        raise SystemExit(2)
