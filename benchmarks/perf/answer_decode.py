"""What stopping complete answers early saves in an evaluation, and that it changes no score.

The generation-based metrics read only each greedy answer's first line (up to the first special
token), so a decode row may leave its batch once that line is complete
(:func:`memla_plugin.mkeb.generation.answer_complete`). This script scores the first N dev records
of the shipped MKEB data with the default model twice per scoring path, once with every answer
decoded to its full length (``eval.gen_max_new_tokens``) and once stopping complete answers, and
prints the seconds of each, their ratio, and whether every score, neighbourhood answer and argmax
token is identical. The unedited model is scored, as the harness does for its reference.

    python benchmarks/perf/answer_decode.py                       # 2 dev records, preamble, 1 thread
    python benchmarks/perf/answer_decode.py --records 3 --prompt-format chat --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Optional

#: ``_Plan.decode_until`` stand-in: no early stop for any decode (the full-length reference)
NEVER: Callable[[Any, Any], list[None]] = lambda plan, tok: [None] * len(plan.decodes)  # noqa: E731


def score_all(model: Any, tok: Any, records: list[Any], opts: Any, until: Optional[Callable[[Any, Any], Any]]) -> tuple[float, list[Any]]:
    """Seconds and outputs of one scoring of ``records``; ``until`` replaces the early-stop rule."""
    from memla_plugin.mkeb import scoring

    saved = scoring._Plan.decode_until
    if until is not None:
        scoring._Plan.decode_until = until
    try:
        t = time.perf_counter()
        outs = scoring.run_scoring(model, tok, records, None, opts, own_reference=True)
        return time.perf_counter() - t, outs
    finally:
        scoring._Plan.decode_until = saved


def same_outputs(a: list[Any], b: list[Any]) -> bool:
    """Every score, neighbourhood answer and neighbourhood argmax token equal."""
    return all(x.scores == y.scores and x.gen_loc == y.gen_loc and x.loc_tokens == y.loc_tokens for x, y in zip(a, b))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=2, help="first N shipped dev records (default 2)")
    ap.add_argument("--prompt-format", default="preamble", help="bare, preamble or chat (default preamble)")
    ap.add_argument("--gen-max-new-tokens", type=int, default=None, help="answer length bound (default: the harness's)")
    ap.add_argument("--batch-size", type=int, default=16, help="rows per forward call (the harness's eval.batch_size)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in the benchmark lanes)")
    args = ap.parse_args(argv)

    import torch

    from memla_plugin.mkeb.generation import GEN_MAX_NEW_TOKENS
    from memla_plugin.mkeb.loader import load_mkeb
    from memla_plugin.mkeb.scoring import ScoringOptions
    from memla_plugin.models.loading import load_model
    from memla_plugin.prompt_format import prompt_template

    torch.set_num_threads(args.threads)
    model, tok = load_model("default")
    records = load_mkeb(None, "dev")[: args.records]
    n = GEN_MAX_NEW_TOKENS if args.gen_max_new_tokens is None else args.gen_max_new_tokens
    print(f"{len(records)} dev records, prompt format {args.prompt_format}, answers up to {n} tokens, "
          f"{args.threads} torch thread(s)")
    for share in (True, False):
        opts = ScoringOptions(prompt_template=prompt_template(tok, args.prompt_format), batch_size=args.batch_size,
                              share_prompts=share, gen_max_new_tokens=n)
        t_full, full = score_all(model, tok, records, opts, NEVER)
        t_early, early = score_all(model, tok, records, opts, None)
        path = "shared prompts (harness default)" if share else "separate sequences"
        print(f"{path}: full-length answers {t_full:.1f} s, answers stopped when complete {t_early:.1f} s, "
              f"ratio {t_early / t_full:.2f}, outputs identical: {same_outputs(full, early)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
