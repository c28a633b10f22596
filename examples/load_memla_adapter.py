"""Reload a saved MEMLA edit in a fresh process with peft alone and show its 12-language answers.

    memla-edit --record 4482 --lang en --save-adapter adapters/spike-hughes
    python examples/load_memla_adapter.py adapters/spike-hughes

The base weights come from ``memla_plugin.models.load_model`` (the embedded default model
unless ``--model``); the edit is attached with plain ``PeftModel.from_pretrained``. "before"
is the same PeftModel under ``disable_adapter()``, "after" with the adapter active, so the
table matches ``memla-edit``'s. ``--verify`` loads through ``load_memla_adapter`` instead,
which first checks the sidecar's weight fingerprint.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adapter", help="directory written by memla-edit --save-adapter (or save_adapter_dir)")
    p.add_argument("--model", default="default", help="base model: 'default', a HF id or a local path")
    p.add_argument("--record", default=None, help="MKEB record for the table (default: the sidecar's case_id)")
    p.add_argument("--verify", action="store_true", help="check the sidecar's weight fingerprint before loading")
    p.add_argument("--max-new-tokens", type=int, default=10)
    p.add_argument("--json", metavar="FILE", help="also write the before/after answers and P values as JSON")
    args = p.parse_args(argv)

    from peft import PeftModel

    from memla_plugin.adapters import load_memla_adapter, read_sidecar
    from memla_plugin.cli.edit import format_table, probe, request_from_record
    from memla_plugin.hparams import MKEB_LANGS
    from memla_plugin.models import load_model

    directory = Path(args.adapter)
    sidecar = read_sidecar(directory)
    edit = sidecar.edits[0]
    size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    print(f"adapter {directory}: {len(sidecar.modules)} modules, ranks "
          f"{[m['rank'] for m in sidecar.modules.values()]}, {size / 1024:.1f} KiB on disk", file=sys.stderr)

    t0 = time.perf_counter()
    base, tok = load_model(args.model)
    base_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.verify:
        model = load_memla_adapter(base, directory)
    else:
        model = PeftModel.from_pretrained(base, str(directory))
    adapter_s = time.perf_counter() - t0
    model.eval()
    print(f"base model loaded in {base_s:.2f} s; adapter attached in {adapter_s:.3f} s"
          + (" (including the fingerprint check)" if args.verify else ""), file=sys.stderr)

    request = request_from_record(str(args.record or edit.case_id), None, edit.edit_lang)
    with model.disable_adapter():
        before = probe(model, tok, request["languages"], MKEB_LANGS, args.max_new_tokens)
    after = probe(model, tok, request["languages"], MKEB_LANGS, args.max_new_tokens)
    print(f"\nMEMLA adapter {directory} on {args.model}: {request['prompt']!r} "
          f"{request['ground_truth']} -> {request['target_new']} (edited in {edit.edit_lang}; greedy decoding)\n")
    print(format_table(request, before, after, MKEB_LANGS))
    summary = {"adapter_bytes": size, "base_load_s": round(base_s, 3), "adapter_load_s": round(adapter_s, 4)}
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "before": before, "after": after}, indent=1, ensure_ascii=False),
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
