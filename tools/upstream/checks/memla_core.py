"""MEMLA through EasyEdit's ``BaseEditor`` on a tiny model: neuron-cache keying and a failed request.

Run in a fresh interpreter where ``memla_plugin`` cannot be imported, against an EasyEdit copy
with the series applied up to the core pull request (or further). Usage: ``memla_core.py WORKDIR``.

* ``two-facts-different-neurons``: ``edit_requests`` of two different facts, without case ids.
  Each fact is attributed in each language and their neurons differ. Where the copy has the
  neuron cache (the speed pull request adds it), ``neuron_cache_dir`` is set: the second fact
  gets no cache hit, the cache holds one entry per fact and language, and editing the first
  fact again reads its neurons back from the cache instead of attributing it again;
* ``failed-request-alone``: three requests in one ``edit_requests`` run where the middle one
  has no knowledge neurons (attribution is made to return none for its prompt): that request is
  logged and not edited (the model is left bit-identical by it), the other two are edited.

Prints ``RESULT_JSON: {...}`` with ``ok`` per check.
"""
import dataclasses
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import torch
import yaml

from _tiny import FACT, emit, save_tiny_qwen2

LANGS = ("en", "zh", "fr")

SECOND = {
    "en": {"prompt": "The capital of Germany is", "subject": "Germany", "target_new": "Madrid",
           "target_true": "Berlin", "paraphrases": []},
    "zh": {"prompt": "德国的首都是", "subject": "德国", "target_new": "马德里", "target_true": "柏林",
           "paraphrases": []},
    "fr": {"prompt": "La capitale de l'Allemagne est", "subject": "Allemagne", "target_new": "Madrid",
           "target_true": "Berlin", "paraphrases": []},
}

THIRD = {
    "en": {"prompt": "Toyota is produced by", "subject": "Toyota", "target_new": "Italy",
           "target_true": "Japan", "paraphrases": []},
}


def request(fact):
    en = fact["en"]
    return {"prompt": en["prompt"], "subject": en["subject"], "target_new": en["target_new"],
            "ground_truth": en["target_true"], "locality": {}, "portability": {}, "edit_lang": "en",
            "languages": fact}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def cache_entries(cache_dir):
    out = {}
    for path in sorted(Path(cache_dir).rglob("*.json")):
        out[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def check_cache_keying(editor, neurons_mod, cache_dir):
    calls = []
    original = neurons_mod.find_neurons

    def spy(model, tok, prompts, target, arch, hparams):
        found = sorted(tuple(map(int, n)) for n in original(model, tok, prompts, target, arch, hparams))
        calls.append({"prompt": prompts[0], "neurons": found})
        return found

    neurons_mod.find_neurons = spy
    try:
        editor.edit_requests([request(FACT), request(SECOND)], sequential_edit=False, verbose=False)
        first_run = list(calls)
        calls.clear()
        editor.edit_requests([request(FACT)], sequential_edit=False, verbose=False)
        again = list(calls)
    finally:
        neurons_mod.find_neurons = original
    by_prompt = {c["prompt"]: c["neurons"] for c in first_run}
    entries = cache_entries(cache_dir) if cache_dir is not None else {}
    en_first, en_second = by_prompt.get(FACT["en"]["prompt"]), by_prompt.get(SECOND["en"]["prompt"])
    per_file = {name: len(items) for name, items in entries.items()}
    result = {
        "neuron_cache": "on" if cache_dir is not None else "not in this pull request",
        "attributed_prompts": [c["prompt"] for c in first_run],
        "neurons_en_fact1": en_first,
        "neurons_en_fact2": en_second,
        "cache_entries_per_file": per_file,
        "attributions_when_fact1_edited_again": len(again),
    }
    result["ok"] = (
        len(first_run) == 2 * len(LANGS)
        and en_first is not None and en_second is not None and en_first != en_second
    )
    if cache_dir is not None:
        result["ok"] = (result["ok"] and len(per_file) == len(LANGS) and all(n == 2 for n in per_file.values())
                        and not again)
    return result


def check_failed_request(editor, neurons_mod, memla_main):
    records = _Records()
    memla_main.LOG.addHandler(records)
    original = neurons_mod.find_neurons
    bad_prompt = SECOND["en"]["prompt"]

    def no_neurons_for_bad(model, tok, prompts, target, arch, hparams):
        if prompts[0] in (bad_prompt, SECOND["zh"]["prompt"], SECOND["fr"]["prompt"]):
            return []
        return original(model, tok, prompts, target, arch, hparams)

    states = []
    real_apply = editor.apply_algo

    def watch(model, tok, requests, hp, **kwargs):
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        edited, weights_copy = real_apply(model, tok, requests, hp, **kwargs)
        changed = sorted(k for k, v in edited.state_dict().items() if not torch.equal(v, before[k]))
        states.append({"prompt": requests[0]["prompt"], "changed": changed, "weights_copy": sorted(weights_copy)})
        return edited, weights_copy

    if hasattr(editor.hparams, "neuron_cache_dir"):
        editor.hparams.neuron_cache_dir = None  # the facts are attributed again, so the wrapper sees them
    neurons_mod.find_neurons = no_neurons_for_bad
    editor.apply_algo = watch
    error = None
    try:
        metrics, _, _ = editor.edit_requests([request(FACT), request(SECOND), request(THIRD)],
                                             sequential_edit=False, verbose=False)
    except Exception:
        error = traceback.format_exc(limit=-3)
        metrics = []
    finally:
        neurons_mod.find_neurons = original
        editor.apply_algo = real_apply
        memla_main.LOG.removeHandler(records)
    logged = [m for m in records.messages if "not edited" in m]
    result = {
        "error": error,
        "edits": states,
        "logged": logged,
        "post_metrics_for": len(metrics),
    }
    by_prompt = {s["prompt"]: s for s in states}
    result["ok"] = (
        error is None and len(metrics) == 3 and len(states) == 3
        and by_prompt[bad_prompt]["changed"] == [] and by_prompt[bad_prompt]["weights_copy"] == []
        and bool(by_prompt[FACT["en"]["prompt"]]["changed"]) and bool(by_prompt[THIRD["en"]["prompt"]]["changed"])
        and len(logged) == 1 and bad_prompt in logged[0]
    )
    return result


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # EasyEdit writes ./logs
    root = Path(os.environ["EASYEDIT_UNDER_TEST"])
    result = {}
    try:
        import memla_plugin  # noqa: F401
        result["memla_plugin_importable"] = True
    except ImportError:
        result["memla_plugin_importable"] = False

    import easyeditor
    from easyeditor import BaseEditor
    from easyeditor.models.memla import MEMLAHyperParams
    # import_module: `import a.b.c as x` would read the attribute easyeditor.models, which
    # easyeditor's own imports rebind to easyeditor.trainer.models
    memla_main = importlib.import_module("easyeditor.models.memla.memla_main")
    neurons_mod = importlib.import_module("easyeditor.models.memla.neurons")

    result["easyeditor_file"] = easyeditor.__file__
    model_dir = save_tiny_qwen2(str(work / "tiny-qwen2-model"))
    config = yaml.safe_load((root / "hparams/MEMLA/qwen2.5-coder-0.5b-instruct.yaml").read_text(encoding="utf-8"))
    has_cache = "neuron_cache_dir" in {f.name for f in dataclasses.fields(MEMLAHyperParams)}
    cache_dir = work / "neuron-cache" if has_cache else None
    config.update(model_name=model_dir, device="cpu", attr_steps=4, max_steps=5)
    if has_cache:
        config["neuron_cache_dir"] = str(cache_dir)
    hp_path = work / "memla-tiny.yaml"
    hp_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    editor = BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(str(hp_path)))

    checks = {}
    for name, fn, args in (("two-facts-different-neurons", check_cache_keying, (editor, neurons_mod, cache_dir)),
                           ("failed-request-alone", check_failed_request, (editor, neurons_mod, memla_main))):
        try:
            checks[name] = fn(*args)
        except Exception:
            checks[name] = {"ok": False, "error": traceback.format_exc(limit=-4)}
    result.update(checks)
    result["ok"] = not result["memla_plugin_importable"] and all(c["ok"] for c in checks.values())
    emit(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
