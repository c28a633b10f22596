"""Score an (unedited) model on MKEB records and print the per-language table.

    python -m memla_plugin.mkeb.evaluate --model default --data default --ids dev

This is the reference row every editing method is compared with. ``--json`` writes the
per-record scores (and the unedited references, reusable via reference.ReferenceCache) to a file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from memla_plugin.errors import MEMLAError

from .aggregate import format_table, mean_scores
from .loader import load_mkeb, resolve_data_path
from .schema import LANGS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m memla_plugin.mkeb.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="'default' or a HF id / local model directory")
    p.add_argument("--data", default="default", help="MKEB JSON ('default': the shipped CounterFact conversion)")
    p.add_argument("--ids", default="dev", help="'dev', 'test', 'all' or an id file (one id per line)")
    p.add_argument("--limit", type=int, default=None, help="only the first N records of the id list")
    p.add_argument("--langs", nargs="+", default=list(LANGS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--prompt-template", default="{}", help="wrap every evaluated prompt, e.g. 'Q: {}\\nA:'")
    p.add_argument("--all-metrics", action="store_true", help="also print EasyEdit's token accuracies")
    p.add_argument("--json", default=None, help="write per-record scores here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records = load_mkeb(args.data, None if args.ids == "all" else args.ids, langs=args.langs)
        if args.limit is not None:
            records = records[: args.limit]
        from memla_plugin.models import load_model

        from .reference import unedited_references

        model, tok = load_model(args.model, device=args.device, dtype=args.dtype)
        t0 = time.perf_counter()
        template = args.prompt_template.replace("\\n", "\n")  # let shells pass a newline as \n
        refs = unedited_references(model, tok, records, args.langs, device=None, batch_size=args.batch_size,
                                   prompt_template=template)
        elapsed = time.perf_counter() - t0
    except MEMLAError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    metrics = ["ES", "PS", "NS", "MQ"] + (["rel_acc", "gen_acc", "port_acc"] if args.all_metrics else [])
    per_lang = mean_scores([r.scores for r in refs], metrics)
    title = (
        f"unedited {args.model} on {len(records)} records of {resolve_data_path(args.data).name} (ids: {args.ids}), "
        f"prompt template {args.prompt_template!r}; scores x100; scoring took {elapsed:.1f} s"
    )
    print(format_table(per_lang, metrics, title=title))
    if args.json:
        out = {"model": args.model, "data": str(args.data), "ids": args.ids, "langs": args.langs,
               "per_lang": per_lang, "records": [r.to_json() for r in refs]}
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
