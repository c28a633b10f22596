"""MEMLA as a native EasyEdit method: one edit through ``BaseEditor`` and the MKEB example, on CPU.

Run by :func:`memla_plugin.upstream.isolated.run_isolated` in a fresh interpreter where
``memla_plugin`` cannot be imported, against an EasyEdit copy with the MEMLA patch applied.
Usage: ``memla_smoke.py WORKDIR``. Prints ``RESULT_JSON: {...}``; exits non-zero when a check fails.
"""
import copy
import json
import os
import runpy
import sys
from pathlib import Path

import yaml

from _tiny import FACT, emit, log_prob, save_tiny_qwen2


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # EasyEdit writes ./logs
    root = Path(os.environ["EASYEDIT_UNDER_TEST"])
    result = {}

    try:
        import memla_plugin  # noqa: F401
        result["memla_plugin_importable"] = True
    except ImportError as exc:
        result["memla_plugin_importable"] = False
        result["memla_plugin_import_error"] = f"{type(exc).__name__}: {exc}"
    assert not result["memla_plugin_importable"], "memla_plugin must not be importable here"

    import easyeditor
    from easyeditor import BaseEditor, MEMLAHyperParams
    from easyeditor.editors.batch_editor import BatchEditor
    from easyeditor.models.memla import apply_memla_to_model
    from easyeditor.util.alg_dict import ALG_DICT
    from easyeditor.util.hparams import HyperParams

    result["easyeditor_file"] = easyeditor.__file__
    assert Path(easyeditor.__file__).resolve().is_relative_to(root.resolve()), easyeditor.__file__
    result["hparams_is_easyedit_hyperparams"] = issubclass(MEMLAHyperParams, HyperParams)
    result["alg_dict_entry"] = ALG_DICT.get("MEMLA") is apply_memla_to_model
    result["batchable"] = BatchEditor.is_batchable_method("MEMLA")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("memla_plugin", "memla_mkeb"))
    result["plugin_modules_loaded"] = leaked

    # --- the tiny model, and the shipped YAML with the tiny model's settings
    model_dir = save_tiny_qwen2(str(work / "tiny-qwen2-model"))
    config = yaml.safe_load((root / "hparams/MEMLA/qwen2.5-0.5b.yaml").read_text(encoding="utf-8"))
    result["shipped_model_name"] = config["model_name"]
    config.update(model_name=model_dir, device="cpu", attr_steps=4, max_steps=30, lr=5e-2)
    hp_path = work / "memla-tiny.yaml"
    hp_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    hparams = MEMLAHyperParams.from_hparams(str(hp_path))
    editor = BaseEditor.from_hparams(hparams)
    result["editor_model_class"] = type(editor.model).__name__
    en = FACT["en"]
    before = {k: v.detach().clone() for k, v in editor.model.state_dict().items()}
    pre = [log_prob(editor.model, editor.tok, en["prompt"], t) for t in (en["target_new"], en["target_true"])]

    seen = {}
    original = editor.apply_algo

    def spy(model, tok, requests, hp, **kwargs):
        edited, weights_copy = original(model, tok, requests, hp, **kwargs)
        seen["post"] = [log_prob(edited, editor.tok, en["prompt"], t) for t in (en["target_new"], en["target_true"])]
        seen["changed"] = sorted(weights_copy)
        return edited, weights_copy

    editor.apply_algo = spy
    metrics, _, _ = editor.edit(
        prompts=en["prompt"], target_new=en["target_new"], ground_truth=en["target_true"], subject=en["subject"],
        rephrase_prompts=en["paraphrases"][0],
        locality_inputs={"neighborhood": {"prompt": ["Toyota is produced by"], "ground_truth": ["Japan"]}},
        sequential_edit=False,
    )
    editor.apply_algo = original
    after = editor.model.state_dict()
    result["pre_logp_new_true"] = pre
    result["post_logp_new_true"] = seen.get("post")
    result["changed_params"] = seen.get("changed")
    result["margin_gain"] = (seen["post"][0] - seen["post"][1]) - (pre[0] - pre[1])
    result["restored_bit_identical"] = all(torch_equal(after[k], before[k]) for k in before)
    result["edit_metrics_keys"] = sorted(metrics[0]["post"])
    result["rewrite_acc"] = metrics[0]["post"].get("rewrite_acc")

    # --- the MKEB example on a one-record file (en, zh, fr), through the script's own main()
    record = {
        "example_id": 1, "relation_description": "capital of",
        "edit": {lang: {k: FACT[lang][k] for k in ("prompt", "subject", "target_new", "target_true")}
                 for lang in ("en", "zh", "fr")},
        "paraphrase_prompts": {lang: FACT[lang]["paraphrases"] for lang in ("en", "zh", "fr")},
        "neighborhood_prompts": {"en": ["Toyota is produced by"], "fr": ["Berlin est en"]},
        "neighborhood_answers": {"en": ["Japan"], "fr": ["Allemagne"]},
        "multi_hop_questions": {"en": ["The Eiffel Tower is in the capital of France, which is"]},
        "multi_hop_new_answer": {"en": "Rome"},
    }
    for lang in ("en", "zh", "fr"):
        record["edit"][lang]["prompt"] = record["edit"][lang]["prompt"].replace(FACT[lang]["subject"], "{}", 1)
    data = work / "mkeb_tiny.json"
    data.write_text(json.dumps([record], ensure_ascii=False), encoding="utf-8")
    memla_main = sys.modules["easyeditor.models.memla.memla_main"]
    argv = sys.argv
    sys.argv = [str(root / "examples/run_memla_mkeb.py"), "--hparams_dir", str(hp_path), "--data_dir", str(data),
                "--ds_size", "1", "--edit_lang", "en", "--output_dir", str(work / "outputs")]
    try:
        namespace = runpy.run_path(str(root / "examples/run_memla_mkeb.py"), run_name="memla_example")
        summary = namespace["main"](sys.argv[1:])
    finally:
        sys.argv = argv
    result["example_summary"] = summary
    result["example_outputs"] = sorted(p.name for p in (work / "outputs").iterdir())
    result["example_neurons_per_lang"] = copy.deepcopy(memla_main.LAST_EDIT_STATS.get("neurons_per_lang"))
    emit(result)

    problems = []
    if not result["hparams_is_easyedit_hyperparams"]:
        problems.append("MEMLAHyperParams does not derive from EasyEdit's HyperParams")
    if not result["alg_dict_entry"]:
        problems.append("ALG_DICT['MEMLA'] is not apply_memla_to_model")
    if leaked:
        problems.append(f"plugin modules loaded: {leaked}")
    if not result["restored_bit_identical"]:
        problems.append("weights differ after EasyEdit restored them")
    if result["margin_gain"] <= 0.5:
        problems.append(f"P(new)/P(true) did not rise enough: gain {result['margin_gain']:.3f}")
    if set(summary["per_language"]) != {"en", "zh", "fr"}:
        problems.append(f"example evaluated {sorted(summary['per_language'])}, expected en, zh, fr")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        sys.exit(1)


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


if __name__ == "__main__":
    main()
