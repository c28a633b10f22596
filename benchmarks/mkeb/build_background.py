"""Build the background directory MEMLA's generic-neuron filter and locality term read.

Background facts come from the training split of the shipped MKEB data (train_ids.txt), never
from dev or test records. For each attribution setting (target form) the script attributes the
first ``--n`` training facts in ``--langs`` with MEMLA's own attribution and stores the neuron
sets in the authors' JSON format under ``<out>/<neuron cache key>/<lang>.json``; it also writes
every training fact's filled edit prompt per language (``prompts.json``) and what it was built
from (``provenance.json``). Resumable: rerun the same command and stored facts are skipped.

    python benchmarks/mkeb/build_background.py --hparams hparams/MEMLA/qwen2.5-0.5b-refined.yaml \\
        --out benchmarks/mkeb/results/background --n 24 --langs en --target-forms unspaced,scored \\
        --positions last,each --prompt-format preamble
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memla_plugin.hashing import file_sha256 as _sha256



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hparams", required=True, help="MEMLA hparams file (model and attribution settings)")
    ap.add_argument("--out", required=True, help="background directory to create or extend")
    ap.add_argument("--n", type=int, default=24, help="training facts to attribute (first n of train_ids.txt)")
    ap.add_argument("--langs", default="en", help="comma-separated languages to attribute")
    ap.add_argument("--target-forms", default="scored", help="comma-separated attr_target_form values")
    ap.add_argument("--positions", default=None,
                    help="comma-separated attr_positions values (default: the hparams file's)")
    ap.add_argument("--prompt-format", default=None,
                    help="how prompts are put to the model (default: the hparams file's; the harness's runs use preamble)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)

    import torch

    from memla_plugin.architectures import resolve_architecture
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.mkeb import load_mkeb, read_test_ids
    from memla_plugin.mkeb.dataset import request_from_record
    from memla_plugin.mkeb.loader import resolve_data_path, shipped_data_dir
    from memla_plugin.models import load_model
    from memla_plugin.neurons.background_build import attribute_background, write_prompts, write_provenance
    from memla_plugin.neurons.settings import AttributionSettings

    torch.set_num_threads(args.threads)
    hp = MEMLAHyperParams.from_hparams(args.hparams)
    ids = read_test_ids("train")
    records = load_mkeb(None, test_ids=ids)
    requests = [request_from_record(r, "en") for r in records]
    data_path = resolve_data_path(None)
    provenance = {
        "split": "train",
        "ids_file": "benchmarks/mkeb/data/train_ids.txt",
        "ids_sha256": _sha256(shipped_data_dir() / "train_ids.txt"),
        "data_file": data_path.name,
        "data_sha256": _sha256(data_path),
        "n_prompts_facts": len(requests),
    }
    write_prompts(args.out, requests, provenance)
    model, tok = load_model(hp.model_name, dtype=hp.dtype)
    arch = resolve_architecture(model, hp.attr_module_tmp, hp.edit_module_tmp)
    name = str(getattr(model.config, "name_or_path", "") or hp.model_name) if hp.model_name == "default" else hp.model_name
    langs = [l.strip() for l in args.langs.split(",") if l.strip()]
    if args.prompt_format:
        hp = hp.replace(prompt_format=args.prompt_format)
    forms = [f.strip() for f in args.target_forms.split(",") if f.strip()]
    positions = [p.strip() for p in (args.positions or hp.attr_positions).split(",") if p.strip()]
    for form, where in [(f, p) for f in forms for p in positions]:
        settings = AttributionSettings.from_hparams(hp.replace(attr_target_form=form, attr_positions=where))
        # written first: readers use exactly these facts and refuse the directory until all are stored
        write_provenance(args.out, {settings.cache_key(name): {
            "n_facts": args.n, "langs": langs, "settings": repr(settings), "model": name,
            "fact_ids": [r["case_id"] for r in requests[: args.n]],
        }})
        cache = attribute_background(model, tok, arch, requests[: args.n], settings, name, args.out, langs,
                                     progress=lambda msg: print(msg, flush=True))
        print(f"{form}, positions {where}: {cache.directory / cache.model_key} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
