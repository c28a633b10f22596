"""One real fact edited by MEMLA and by EasyEdit's own methods, all through EasyEdit's ``BaseEditor``.

    python -m memla_plugin.easyedit.demo                      # BMIKE-53 CounterFact case 4482, all methods
    python -m memla_plugin.easyedit.demo --methods MEMLA,ROME --case 4482 --edit-lang en

For each method: ``load_hparams`` (the project's ``hparams/<ALG>/qwen2.5-0.5b*.yaml``, default
model), ``BaseEditor.from_hparams``, ``prepare_baseline`` (statistics / MEND checkpoint, cached),
then EasyEdit's ``edit()`` with its standard protocol (edit, evaluate, restore). Prints EasyEdit's
reliability (rewrite_acc), generalization (rephrase_acc), locality (neighborhood_acc) and
portability (multi-hop acc) before and after, the edit time, and whether the weights were
restored bit for bit.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from ..request import LangFact, MultilingualRequest

# method -> hparams file under the hparams directory
HPARAMS = {
    "MEMLA": "MEMLA/qwen2.5-0.5b.yaml",
    "ROME": "ROME/qwen2.5-0.5b.yaml",
    "MEMIT": "MEMIT/qwen2.5-0.5b.yaml",
    "FT-L": "FT/qwen2.5-0.5b-ft-l.yaml",
    "FT-M": "FT/qwen2.5-0.5b-ft-m.yaml",
    "LoRA": "LoRA/qwen2.5-0.5b.yaml",
    "MEND": "MEND/qwen2.5-0.5b.yaml",
}


def _default_hparams_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "hparams"


def edit_inputs(record, edit_lang: str) -> dict[str, Any]:
    """EasyEdit ``edit()`` keywords for one MKEB record (plus MEMLA's ``languages``)."""
    fact = record.fact(edit_lang)
    if not fact.target_true:
        raise ValueError(f"record {record.example_id} has no true answer in {edit_lang!r}")
    request = MultilingualRequest(
        edit_lang=edit_lang,
        prompt=fact.question,
        target_new=fact.target_new,
        target_true=fact.target_true,
        subject=fact.subject,
        paraphrases=list(record.paraphrase_prompts.get(edit_lang, [])),
        languages={
            lang: LangFact(record.fact(lang).question, record.fact(lang).subject, record.fact(lang).target_new,
                           record.fact(lang).target_true, list(record.paraphrase_prompts.get(lang, [])))
            for lang in record.langs
        },
        case_id=record.example_id,
    ).to_easyedit()
    kwargs: dict[str, Any] = {
        "prompts": request["prompt"],
        "target_new": request["target_new"],
        "ground_truth": request["ground_truth"],
        "subject": request["subject"],
        "rephrase_prompts": request["rephrase_prompt"],
        "locality_inputs": None,
        "portability_inputs": None,
        # MEMLA's own keys, carried through edit() by memla_plugin.easyedit.requests
        "languages": request["languages"],
        "edit_lang": request["edit_lang"],
        "case_id": request["case_id"],
    }
    if record.neighborhood_prompts.get(edit_lang):
        kwargs["locality_inputs"] = {
            "neighborhood": {
                "prompt": [record.neighborhood_prompts[edit_lang][0]],
                "ground_truth": [record.neighborhood_answers[edit_lang][0]],
            }
        }
    if record.multi_hop_questions.get(edit_lang):
        kwargs["portability_inputs"] = {
            "multi_hop": {
                "prompt": [record.multi_hop_questions[edit_lang][0]],
                "ground_truth": [record.multi_hop_new_answer[edit_lang]],
            }
        }
    if fact.subject not in fact.question:
        kwargs.pop("subject")  # EasyEdit asserts the subject is in the prompt
    return kwargs


def _mean(value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return sum(float(v) for v in value) / len(value) if value else None
    return float(value)


def summarize(metric: dict[str, Any]) -> dict[str, Optional[float]]:
    """EasyEdit's per-edit metrics -> reliability/generalization/locality/portability, pre and post."""
    out: dict[str, Optional[float]] = {}
    for phase in ("pre", "post"):
        m = metric.get(phase, {})
        out[f"rel_{phase}"] = _mean(m.get("rewrite_acc"))
        out[f"gen_{phase}"] = _mean(m.get("rephrase_acc"))
        out[f"port_{phase}"] = _mean(m.get("portability", {}).get("multi_hop_acc"))
    out["loc"] = _mean(metric.get("post", {}).get("locality", {}).get("neighborhood_acc"))
    return out


def _weights_digest(model) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model, before) -> bool:
    import torch

    after = model.state_dict()
    return set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)


def run_method(
    alg: str,
    hparams_path: Path,
    inputs: dict[str, Any],
    check_restore: bool = True,
    prepare_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Edit with one method through BaseEditor; returns EasyEdit's metrics summary and timings."""
    from easyeditor import BaseEditor

    from . import load_hparams, prepare_baseline

    hp = load_hparams(alg, hparams_path)
    t0 = time.perf_counter()
    editor = BaseEditor.from_hparams(hp)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepare_baseline(alg, editor.model, editor.tok, hp, **(prepare_kwargs or {}))
    t_prepare = time.perf_counter() - t0
    before = _weights_digest(editor.model) if check_restore else None
    timing: dict[str, float] = {}
    original = editor.apply_algo

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timing["edit_s"] = time.perf_counter() - start

    editor.apply_algo = timed
    t0 = time.perf_counter()
    metrics, _, _ = editor.edit(sequential_edit=False, verbose=False, **inputs)
    t_total = time.perf_counter() - t0
    result = summarize(metrics[0])
    result.update(
        method=alg,
        load_s=t_load,
        prepare_s=t_prepare,
        edit_s=timing.get("edit_s", float("nan")),
        edit_and_eval_s=t_total,
        restored=_same(editor.model, before) if check_restore else None,
        dtype=str(next(editor.model.parameters()).dtype).replace("torch.", ""),
    )
    del editor
    return result


def _fmt(v: Optional[float]) -> str:
    return "  -  " if v is None else f"{v:.2f}"


def print_table(rows: Sequence[dict[str, Any]], case: Any, prompt: str, new: str, true: str) -> None:
    print()
    print(f"BMIKE-53 CounterFact case {case}: {prompt!r}  {true} -> {new}   (EasyEdit metrics, teacher-forced token accuracy)")
    header = f"{'method':7} {'reliability':>13} {'generalization':>15} {'locality':>9} {'portability':>13} {'edit s':>8} {'restored':>9} {'dtype':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['method']:7} {_fmt(r['rel_pre']):>6}->{_fmt(r['rel_post']):<6} {_fmt(r['gen_pre']):>7}->{_fmt(r['gen_post']):<6}"
            f" {_fmt(r['loc']):>9} {_fmt(r['port_pre']):>6}->{_fmt(r['port_post']):<6} {r['edit_s']:8.1f}"
            f" {str(r['restored']):>9} {r['dtype']:>9}"
        )
    print("reliability = rewrite_acc, generalization = rephrase_acc, locality = neighborhood_acc (post vs pre outputs),")
    print("portability = multi-hop acc; 'edit s' = the apply function alone (prepare/eval excluded).")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m memla_plugin.easyedit.demo", description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(HPARAMS), help=f"comma-separated, from {', '.join(HPARAMS)}")
    p.add_argument("--case", default="4482", help="MKEB example_id (default 4482: Spike Hughes, London -> Philadelphia)")
    p.add_argument("--edit-lang", default="en")
    p.add_argument("--data", default=None, help="MKEB JSON file (default: the shipped CounterFact conversion)")
    p.add_argument("--hparams-dir", type=Path, default=None, help="folder with <ALG>/*.yaml (default: the repo's hparams/)")
    p.add_argument("--mend-steps", type=int, default=None, help="MEND training iterations (default: memla_plugin.easyedit.mend.DEFAULT_STEPS)")
    p.add_argument("--mend-accumulate", type=int, default=None, help="MEND gradient accumulation (default: the authors' 10)")
    p.add_argument("--no-restore-check", action="store_true", help="skip the bit-for-bit restore check (saves memory)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from ..mkeb import load_mkeb
    from . import register

    register()
    logging.getLogger().setLevel(logging.WARNING)  # EasyEdit sets INFO at import; keep the demo readable
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in HPARAMS]
    if unknown:
        print(f"unknown methods {unknown}; choose from {', '.join(HPARAMS)}", file=sys.stderr)
        return 2
    (record,) = load_mkeb(args.data, test_ids=[args.case])
    inputs = edit_inputs(record, args.edit_lang)
    hdir = args.hparams_dir or _default_hparams_dir()
    rows = []
    for alg in methods:
        print(f"== {alg}: editing through EasyEdit BaseEditor ...", flush=True)
        prepare: dict[str, Any] = {}
        if alg == "MEND" and args.mend_steps is not None:
            prepare["steps"] = args.mend_steps
        if alg == "MEND" and args.mend_accumulate is not None:
            prepare["training_overrides"] = {"accumulate_bs": args.mend_accumulate}
        row = run_method(alg, hdir / HPARAMS[alg], inputs, check_restore=not args.no_restore_check, prepare_kwargs=prepare)
        rows.append(row)
        print(
            f"   {alg}: reliability {_fmt(row['rel_pre'])}->{_fmt(row['rel_post'])}, generalization "
            f"{_fmt(row['gen_pre'])}->{_fmt(row['gen_post'])}, locality {_fmt(row['loc'])}, "
            f"edit {row['edit_s']:.1f} s, prepare {row['prepare_s']:.1f} s, restored {row['restored']}",
            flush=True,
        )
    fact = record.fact(args.edit_lang)
    print_table(rows, record.example_id, fact.question, fact.target_new, fact.target_true)
    return 0


if __name__ == "__main__":
    sys.exit(main())
