"""``memla-edit``: edit one fact with MEMLA and show every MKEB language's answer before and after.

The fact comes from the command line (``--prompt --target-new --target-true``, optionally
``--also LANG PROMPT TARGET_TRUE TARGET_NEW`` for other languages) or from an MKEB record
(``--record CASE_ID [--data FILE]``; the shipped BMIKE-53 CounterFact conversion by default).
The model is the embedded default (Qwen2.5-Coder-0.5B-Instruct) unless ``--model`` or the
hparams say otherwise.

For each of the 12 MKEB languages it prints the model's greedy answer to that language's
question (asked through the chat template of an instruct model, ``--answer-format``), whether
that answer names the new object, the old one, both or neither (the benchmark's ``gen_ES``),
and whether P(target_new) > P(target_true) (teacher-forced, MKEB's edit-success test), before
and after the edit. The edit is made once, in ``--lang``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from ..errors import HParamsError
from ..hparams import MKEB_LANGS
from ..mkeb.generation import GEN_MAX_NEW_TOKENS
from ..request import LangFact, MultilingualRequest
from .common import CLIUsageError, check_output_file, run_command

DEFAULT_HPARAMS = "qwen2.5-0.5b.yaml"


def _say(msg: str) -> None:
    print(f"[memla-edit] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs


def find_hparams_file(name: str = DEFAULT_HPARAMS) -> Optional[Path]:
    """The shipped ``hparams/MEMLA/<name>``: next to the package (source checkout), in the
    current directory, or installed as data under ``<prefix>/share/memla-plugin``."""
    pkg_root = Path(__file__).resolve().parents[2]
    candidates = [
        pkg_root / "hparams" / "MEMLA" / name,
        Path.cwd() / "hparams" / "MEMLA" / name,
        Path(sys.prefix) / "share" / "memla-plugin" / "hparams" / "MEMLA" / name,
    ]
    for c in candidates:
        if c.is_file():
            return c
    return None


def load_hparams(path: Optional[str]):
    from ..hparams import MEMLAHyperParams

    if path:
        return MEMLAHyperParams.from_hparams(path), str(path)
    found = find_hparams_file()
    if found is not None:
        return MEMLAHyperParams.from_hparams(found), str(found)
    return MEMLAHyperParams(), "built-in defaults (paper values)"


def request_from_cli(args: argparse.Namespace) -> dict[str, Any]:
    """An EasyEdit/MEMLA request from --prompt/--subject/--target-new/--target-true (+ --also)."""
    for flag, value in (("--prompt", args.prompt), ("--target-new", args.target_new), ("--target-true", args.target_true)):
        if not value or not value.strip():
            raise HParamsError(f"{flag} is required when no --record is given (MEMLA attributes on the true target)")
    subject = args.subject or ""
    prompt = args.prompt.replace("{}", subject) if "{}" in args.prompt else args.prompt
    if subject and subject not in prompt:
        _say(f"note: subject {subject!r} does not occur in the prompt (MEMLA does not need it)")
    languages = {args.lang: LangFact(prompt, subject, args.target_new, args.target_true)}
    for lang, p, true, new in args.also or []:
        if lang not in MKEB_LANGS:
            raise HParamsError(f"--also: unknown language {lang!r}; use one of {', '.join(MKEB_LANGS)}")
        languages[lang] = LangFact(p, "", new, true)
    request = MultilingualRequest(edit_lang=args.lang, prompt=prompt, target_new=args.target_new,
                                  target_true=args.target_true, subject=subject, languages=languages,
                                  case_id="cli")
    return request.to_easyedit()


def request_from_record(case_id: str, data: Optional[str], lang: str) -> dict[str, Any]:
    """The request for MKEB record ``case_id`` edited in ``lang`` (all its languages attached)."""
    from ..mkeb import load_mkeb
    from ..mkeb.dataset import request_from_record as build

    records = load_mkeb(data, test_ids=[case_id])
    if not records:
        raise HParamsError(f"--record {case_id}: no such example_id in {data or 'the shipped CounterFact data'}")
    return build(records[0], lang)


def check_request_prompts(request: dict[str, Any], max_chars: int) -> None:
    """Refuse a prompt or paraphrase over ``max_chars`` characters (it would be batched whole into the model)."""
    for lang, fact in request["languages"].items():
        texts = [("prompt", fact.get("prompt") or "")]
        texts += [(f"paraphrase {i}", p) for i, p in enumerate(fact.get("paraphrases") or [])]
        for what, text in texts:
            if len(text) > max_chars:
                raise CLIUsageError(f"{lang} {what}: {len(text)} characters, over the limit of {max_chars} "
                                    f"(--max-prompt-chars); shorten it or raise the limit")


# ----------------------------------------------------------------------------- probing


def render_answer(tok, ids: Sequence[int]) -> str:
    """Greedy tokens as text: up to the first special token (end of turn) and the first line."""
    from ..mkeb.generation import stop_ids

    stops = stop_ids(tok)
    cut = list(ids)
    for i, t in enumerate(cut):
        if t in stops:
            cut = cut[:i]
            if not cut:
                return tok.decode([t])  # the model ends its turn at once: say so
            break
    text = tok.decode(cut, skip_special_tokens=True).strip()
    return text.splitlines()[0].strip() if text else ""


def answer_format_for(choice: str, tok: Any, prompt_format: str) -> str:
    """``--answer-format``: ``auto`` is the chat template when the tokenizer has one, else the edit's format."""
    return choice if choice != "auto" else "chat" if getattr(tok, "chat_template", None) else prompt_format


def probe(model, tok, languages: dict[str, dict[str, Any]], langs: Sequence[str], max_new_tokens: int,
          batch_size: int = 12, prompt_format: str = "bare", answer_format: Optional[str] = None,
          gen_tokens: int = 0) -> dict[str, dict[str, Any]]:
    """Greedy answer and P(new) vs P(true) for each language's question (one batched pass each),
    the question put in ``prompt_format`` as the edit's attribution and training put it.

    ``answer_format`` (default ``prompt_format``): how the question is asked for the answer (an
    instruct model's user: ``chat``); ``says``: whether its first ``gen_tokens`` name the new or old target.
    """
    import math

    from ..mkeb.engine import evaluating
    from ..mkeb.generation import answer_text, which_target
    from ..mkeb.metrics import encode_prompt, encode_target, greedy_decode, teacher_forced
    from ..prompt_format import format_prompt

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = [lang for lang in langs if lang in languages]
    prompts, n_new, pairs = [], [], []
    for lang in rows:
        fact = languages[lang]
        p = encode_prompt(tok, format_prompt(tok, fact["prompt"], prompt_format))
        new = encode_target(tok, fact["target_new"], lang, where=f"target_new ({lang})")
        true = encode_target(tok, fact["target_true"], lang, where=f"target_true ({lang})")
        prompts.append(encode_prompt(tok, format_prompt(tok, fact["prompt"], answer_format or prompt_format)))
        n_new.append(min(max_new_tokens, max(len(new), len(true)) + 3))
        pairs += [(p, new), (p, true)]
    shown = list(n_new)
    n_new = [max(n, gen_tokens) for n in n_new]
    with evaluating(model):  # eval mode and no gradients, as scoring measures a model
        decoded = greedy_decode(model, prompts, n_new, pad_id=pad, batch_size=batch_size)
        scored = teacher_forced(model, pairs, pad_id=pad, batch_size=2 * batch_size)
    out = {}
    for i, lang in enumerate(rows):
        lp_new, lp_true = scored[2 * i].logprob, scored[2 * i + 1].logprob
        out[lang] = {"answer": render_answer(tok, decoded[i][: shown[i]]), "p_new": math.exp(lp_new),
                     "p_true": math.exp(lp_true), "new_beats_true": lp_new > lp_true}
        if gen_tokens > 0:
            full = answer_text(tok, decoded[i][:gen_tokens])
            fact = languages[lang]
            out[lang].update(bounded_answer=full, says=which_target(full, fact["target_new"], fact["target_true"], lang))
    return out


# ----------------------------------------------------------------------------- progress


@contextmanager
def attribution_progress(labels: Sequence[str] = (), tick_s: float = 30.0) -> Iterator[None]:
    """Progress lines for the edit: each language's attribution (start, every ``tick_s``, end),
    then the masked-LoRA training that follows the last one.

    Wraps the public ``memla_plugin.neurons.find_neurons`` for the duration of the edit
    (apply_memla_to_model resolves it at call time), so the user sees which of the slow
    integrated-gradient passes is running. ``labels`` names the calls in order (the
    languages MEMLA attributes: the edit language, then the identification languages).
    Restored afterwards.
    """
    import threading

    import memla_plugin.neurons as neurons

    had = "find_neurons" in vars(neurons)
    original = neurons.find_neurons
    calls = [0]
    state = {"what": "", "t0": time.perf_counter()}  # what is running now (empty: nothing to report)
    lock = threading.Lock()

    def set_state(what: str) -> None:
        with lock:
            state["what"], state["t0"] = what, time.perf_counter()

    def wrapped(model, tok, prompts, target, arch, hparams, *a, **k):
        i = calls[0]
        calls[0] += 1
        label = f"{labels[i]} ({i + 1}/{len(labels)})" if i < len(labels) else f"#{i + 1}"
        t0 = time.perf_counter()
        _say(f"  attribution {label}: {len(prompts)} prompt(s), target {target!r}, {arch.num_layers} layers, "
             + (f"{hparams.attr_steps} IG steps ..." if getattr(hparams, "attr_method", "ig") == "ig"
                else f"one-pass {hparams.attr_method} ..."))
        set_state(f"attribution {label}")
        try:
            found = original(model, tok, prompts, target, arch, hparams, *a, **k)
        except BaseException:
            set_state("")
            raise
        _say(f"  attribution {label} done in {time.perf_counter() - t0:.1f} s: {len(found)} neurons")
        if calls[0] >= len(labels):
            _say(f"  training the masked dual LoRA (at most {hparams.max_steps} steps) ...")
            set_state("training")
        else:
            set_state("")
        return found

    done = threading.Event()

    def tick() -> None:
        while not done.wait(tick_s):
            with lock:
                what, t0 = state["what"], state["t0"]
            if what:
                _say(f"  {what} still running ({time.perf_counter() - t0:.0f} s)")

    ticker = threading.Thread(target=tick, daemon=True)
    neurons.find_neurons = wrapped
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        if had:
            neurons.find_neurons = original
        else:
            del neurons.find_neurons


# ----------------------------------------------------------------------------- output


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.0e}"


def format_table(request: dict[str, Any], before: dict, after: dict, langs: Sequence[str], width: int = 30) -> str:
    def clip(s: str) -> str:
        s = s.replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    said = any("says" in r for r in (*before.values(), *after.values()))
    says_head = f"{'says: before -> after':<22}  " if said else ""
    head = f"{'lang':<4}  {'before':<{width}}  {'after':<{width}}  {says_head}new>true (P new/true) before -> after"
    lines = [head, "-" * len(head)]
    languages = request["languages"]
    for lang in langs:
        if lang not in languages:
            lines.append(f"{lang:<4}  (no prompt in this language)")
            continue
        b, a = before[lang], after[lang]
        verdict = lambda r: ("yes" if r["new_beats_true"] else "no ") + f" ({_fmt_p(r['p_new'])}/{_fmt_p(r['p_true'])})"
        says_cell = f"{b.get('says', '?'):<7} -> {a.get('says', '?'):<7}       " if said else ""
        lines.append(f"{lang:<4}  {clip(b['answer']):<{width}}  {clip(a['answer']):<{width}}  {says_cell}"
                     f"{verdict(b)} -> {verdict(a)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memla-edit",
        description="Edit one fact with MEMLA and print the greedy answer in all 12 MKEB languages before and after.",
    )
    src = p.add_argument_group("the fact (either a record or the command-line fields)")
    src.add_argument("--record", metavar="CASE_ID", help="example_id of an MKEB record (e.g. 4482)")
    src.add_argument("--data", metavar="FILE", default=None,
                     help="MKEB JSON file (default: the shipped BMIKE-53 CounterFact conversion)")
    src.add_argument("--prompt", help="question/prompt in --lang ('{}' is replaced by --subject)")
    src.add_argument("--subject", help="subject of the fact")
    src.add_argument("--target-new", help="the new answer")
    src.add_argument("--target-true", help="the current answer (attribution and the loss use it)")
    src.add_argument("--also", nargs=4, action="append", metavar=("LANG", "PROMPT", "TARGET_TRUE", "TARGET_NEW"),
                     help="the same fact in another language (repeatable): shown in the table and used as an "
                          "identification language if it is one")
    p.add_argument("--lang", default="en", choices=MKEB_LANGS, help="edit language (default: en)")
    p.add_argument("--model", default=None,
                   help="'default' (embedded Qwen2.5-Coder-0.5B-Instruct), a HF id or a local path "
                        "(default: the hparams' model_name)")
    p.add_argument("--hparams", default=None,
                   help=f"MEMLA hparams YAML (default: hparams/MEMLA/{DEFAULT_HPARAMS})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: the hparams' device)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="model dtype (default: the hparams' dtype, else float32)")
    p.add_argument("--langs", default=",".join(MKEB_LANGS), help="comma-separated languages to show")
    p.add_argument("--max-new-tokens", type=int, default=10,
                   help="cap on greedy tokens per answer (each answer gets target length + 3, up to this)")
    p.add_argument("--answer-format", default="auto", choices=["auto", "bare", "chat", "preamble"],
                   help="how the question is asked for the answers shown and judged: auto = the tokenizer's chat "
                        "template when it has one (as a user of an instruct model asks), else the edit's prompt_format")
    p.add_argument("--answer-tokens", type=int, default=GEN_MAX_NEW_TOKENS, metavar="N",
                   help="the answer is decoded up to N tokens and judged: does it name the new object, the old one, "
                        f"both or neither (the benchmark's gen_ES; default {GEN_MAX_NEW_TOKENS}; 0: not judged)")
    p.add_argument("--json", metavar="FILE", help="also write before/after answers and edit statistics as JSON")
    p.add_argument("--max-prompt-chars", type=int, default=1000, metavar="N",
                   help="refuse prompts longer than N characters (each is batched whole into the model; default 1000)")
    p.add_argument("--save-adapter", metavar="DIR", default=None,
                   help="also save the edit as a peft LoRA adapter (+ memla_edit.json provenance) in DIR; "
                        "load it with PeftModel.from_pretrained(base_model, DIR)")
    return p


def check_args(args: argparse.Namespace) -> list[str]:
    """Every flag that can be checked without a model, so a mistake costs no load and no edit;
    returns the languages to show."""
    langs = [l.strip() for l in args.langs.split(",") if l.strip()]
    bad = [l for l in langs if l not in MKEB_LANGS]
    if bad:
        raise HParamsError(f"--langs: unknown language(s) {', '.join(bad)}; use {', '.join(MKEB_LANGS)}")
    if args.record is not None and (args.prompt or args.target_new or args.target_true):
        raise HParamsError("give either --record or --prompt/--target-new/--target-true, not both")
    if args.save_adapter and Path(args.save_adapter, "adapter_config.json").exists():
        raise HParamsError(f"--save-adapter {args.save_adapter}: already holds an adapter; choose a new directory")
    if args.json:
        check_output_file(args.json, "--json")  # before the edit: its result must not be lost at the end
    if args.max_prompt_chars < 1:
        raise CLIUsageError(f"--max-prompt-chars {args.max_prompt_chars}: give a number of characters >= 1")
    if args.answer_tokens < 0:
        raise CLIUsageError(f"--answer-tokens {args.answer_tokens}: give a number of tokens >= 0")
    return langs


def hparams_from_args(args: argparse.Namespace):
    """The MEMLA hparams (``--hparams`` or the shipped file) with ``--model/--device/--dtype`` applied."""
    hparams, hp_source = load_hparams(args.hparams)
    changes = {}
    if args.model:
        changes["model_name"] = args.model
    if args.device is not None:
        changes["device"] = int(args.device) if args.device.isdigit() else args.device
    if args.dtype:
        changes["dtype"] = args.dtype
    if changes:
        hparams = hparams.replace(**changes)
    _say(f"hparams: {hp_source}" + (f" (overridden: {', '.join(changes)})" if changes else ""))
    return hparams, hp_source


def run(args: argparse.Namespace) -> dict[str, Any]:
    langs = check_args(args)
    hparams, hp_source = hparams_from_args(args)

    if args.record is not None:
        request = request_from_record(args.record, args.data, args.lang)
        _say(f"record {args.record}: {request['prompt']!r}  {request['ground_truth']} -> {request['target_new']} "
             f"(edit in {args.lang}, {len(request['languages'])} languages)")
    else:
        request = request_from_cli(args)
        _say(f"fact: {request['prompt']!r}  {request['ground_truth']} -> {request['target_new']} (edit in {args.lang})")

    check_request_prompts(request, args.max_prompt_chars)

    from ..models import load_model
    from .. import memla_main

    _say(f"loading model {hparams.model_name!r} on {hparams.device} ...")
    t0 = time.perf_counter()
    dtype = hparams.dtype or ("float16" if hparams.fp16 else None)
    model, tok = load_model(hparams.model_name, device=hparams.device, dtype=dtype)
    load_s = time.perf_counter() - t0
    _say(f"model ready in {load_s:.1f} s")
    answer_format = answer_format_for(args.answer_format, tok, hparams.prompt_format)
    asked = {"prompt_format": hparams.prompt_format, "answer_format": answer_format, "gen_tokens": args.answer_tokens}

    _say("answers before the edit ...")
    t0 = time.perf_counter()
    before = probe(model, tok, request["languages"], langs, args.max_new_tokens, **asked)
    probe_s = time.perf_counter() - t0

    _say(f"editing with MEMLA (attribution in {args.lang} + identification languages "
         f"{', '.join(hparams.id_langs)}, then masked dual LoRA training) ...")
    t0 = time.perf_counter()
    attributed = [args.lang] + [l for l in hparams.id_langs if l != args.lang and l in request["languages"]]
    extra: dict[str, Any] = {}
    if args.save_adapter:
        from ..adapters import AdapterCapture

        extra["on_trained"] = capture = AdapterCapture(model, hparams)
        _say(f"fingerprinted the unedited weights for the adapter's sidecar in {capture.fingerprint_s:.1f} s")
        t0 = time.perf_counter()
    with attribution_progress(attributed):
        model, _ = memla_main.apply_memla_to_model(model, tok, [request], hparams, return_orig_weights=False, **extra)
    edit_s = time.perf_counter() - t0
    if args.save_adapter:
        saved = capture.save(args.save_adapter)
        size = sum(f.stat().st_size for f in saved.iterdir() if f.is_file())
        _say(f"saved the edit as a peft LoRA adapter in {saved} ({size / 1024:.1f} KiB)")
    report = memla_main.last_edit_report()
    stats = report.as_dict() if report is not None else {}
    _say(
        f"edit done in {edit_s:.1f} s: attribution {stats.get('attribution_s', float('nan')):.1f} s, "
        f"LIKN {stats.get('n_likn')} / LSKN {stats.get('n_lskn')} neurons, {stats.get('steps')} training steps "
        f"(stopped by {stats.get('stopped_by')}, P(new) {stats.get('p_new', float('nan')):.3f}) in "
        f"{stats.get('train_s', float('nan')):.1f} s"
    )

    _say("answers after the edit ...")
    after = probe(model, tok, request["languages"], langs, args.max_new_tokens, **asked)

    print(f"\nMEMLA edit of {request['prompt']!r}: {request['ground_truth']} -> {request['target_new']} "
          f"(edited in {args.lang}; model {hparams.model_name}; greedy decoding)")
    print(f"answers asked as {answer_format!r}" + (f", judged on the first {args.answer_tokens} tokens" if args.answer_tokens
          else "") + f"; P(new) vs P(true) after the question as {hparams.prompt_format!r} (as the edit saw it)\n")
    print(format_table(request, before, after, langs))
    result = {
        "request": {k: request[k] for k in ("case_id", "prompt", "subject", "target_new", "ground_truth", "edit_lang")},
        "model": hparams.model_name,
        "hparams": hp_source,
        "before": before,
        "after": after,
        "asked": asked,
        "timings_s": {"load": load_s, "probe": probe_s, "edit": edit_s},
        "edit_stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str, list, dict, type(None)))},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        _say(f"wrote {args.json}")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("memla-edit", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
