"""What computing an in-context editor's shared head once saves in an evaluation, and what it changes.

IKE puts its demonstrations and the new fact before every evaluated question, so every prompt of
a record (12 languages: edit question, paraphrases, neighbourhood and multi-hop prompts) starts
with the same few hundred tokens. The scorer computes that head once and copies its cache into
each batch (``ScoringOptions.share_prefix``, :func:`memla_plugin.mkeb.kv_fork.shared_prompt_scoring`).
This script builds an IKE-shaped context from K train-split facts (``New Fact: ...`` lines in
EasyEdit's layout, no retrieval, so no sentence encoder is needed), scores the first N dev records
of the shipped data under it with the default model, once computing every prompt whole and once
with the shared head, and prints the seconds, the ratio, the largest difference of any
probability-based score, and whether every argmax- and generation-based score is equal.

    python benchmarks/perf/context_head.py                   # 2 dev records, 8 demonstrations, preamble
    python benchmarks/perf/context_head.py --demos 16 --records 1
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional

#: metrics read from argmax tokens or greedy answers: a float difference shows only if a token flips
EXACT = ("NS", "MQ", "rel_acc", "gen_acc", "loc_acc", "port_acc", "true_acc",
         "gen_ES", "gen_PS", "gen_ES_old", "gen_PS_old", "gen_NS")


def demonstrations(k: int) -> str:
    """An IKE-shaped context: K train-split facts as EasyEdit states them, then the ``Prompt:`` cue."""
    from memla_plugin.easyedit.ike import new_fact_line
    from memla_plugin.mkeb.loader import load_mkeb

    lines = []
    for rec in load_mkeb(None, "train")[:k]:
        fact = rec.fact("en")
        lines.append(new_fact_line({"prompt": fact.question, "target_new": fact.target_new, "edit_lang": "en"}))
    return "".join(lines) + "Prompt: "


def compare(a: list[Any], b: list[Any]) -> tuple[float, bool]:
    """(largest |difference| of a probability-based score, every other score equal)."""
    worst, exact = 0.0, True
    for x, y in zip(a, b):
        for lang, scores in x.scores.items():
            for metric, value in scores.items():
                other = y.scores[lang][metric]
                if value is None or other is None:
                    exact &= value == other
                elif metric in EXACT:
                    exact &= value == other
                else:
                    worst = max(worst, abs(value - other))
    return worst, exact


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=2, help="first N shipped dev records (default 2)")
    ap.add_argument("--demos", type=int, default=8, help="demonstrations in the context (IKE's k; default 8)")
    ap.add_argument("--prompt-format", default="preamble", help="bare, preamble or chat (default preamble)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in the benchmark lanes)")
    args = ap.parse_args(argv)

    import torch

    from memla_plugin.mkeb import scoring
    from memla_plugin.mkeb.loader import load_mkeb
    from memla_plugin.models.loading import load_model
    from memla_plugin.prompt_format import prompt_template, with_context

    torch.set_num_threads(args.threads)
    model, tok = load_model("default")
    records = load_mkeb(None, "dev")[: args.records]
    context = demonstrations(args.demos)
    template = with_context(prompt_template(tok, args.prompt_format), context)
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    print(f"{len(records)} dev records, {args.demos} demonstrations ({n_ctx} context tokens), "
          f"prompt format {args.prompt_format}, {args.threads} torch thread(s)")
    runs = {}
    for name, share in (("whole prompts", 0), ("shared head", scoring.ScoringOptions().share_prefix)):
        opts = scoring.ScoringOptions(prompt_template=template, batch_size=16, share_prefix=share)
        t = time.perf_counter()
        outs = scoring.run_scoring(model, tok, records, None, opts)
        runs[name] = (time.perf_counter() - t, outs)
        print(f"{name}: {runs[name][0]:.1f} s", flush=True)
    worst, exact = compare(runs["whole prompts"][1], runs["shared head"][1])
    print(f"ratio {runs['shared head'][0] / runs['whole prompts'][0]:.2f}; largest difference of a probability-based "
          f"score {worst:.2e}; argmax- and generation-based scores equal: {exact}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
