"""Every edit method optimises exactly the target ids the MKEB scorer scores, in en and in zh.

The tokenizer handed to each method records every text it tokenises during the edit. The
texts that end with the target are the ones a method builds its loss on (the target alone,
or prompt + target); in each, the target must be spelled in the scored form (" English" for
en, "英语" with no space for zh) and its ids must be exactly the scorer's
(:func:`memla_plugin.tokenisation.encode_target`), with no merge across the prompt boundary.
MEMLA's attribution is left out on purpose: it scores the bare target, as the authors' code
does, and optimises nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_easyedit_integration import TINY_TEXTS, ee, tiny_dir, write_hparams  # noqa: F401

from memla_plugin.mkeb.dataset import request_from_record
from memla_plugin.mkeb.loader import record_from_json
from memla_plugin.tokenisation import encode_target, target_with_space

RECORD = {
    "example_id": 11,
    "edit": {
        "en": {"prompt": "The mother tongue of {}?", "subject": "Danielle Darrieux", "target_new": "English",
               "target_true": "French"},
        "zh": {"prompt": "{}的母语是什么？", "subject": "Danielle Darrieux", "target_new": "英语",
               "target_true": "法语"},
    },
    "paraphrase_prompts": {"en": ["Danielle Darrieux speaks?"], "zh": ["Danielle Darrieux说什么语言？"]},
    "neighborhood_prompts": {"en": ["Toyota is produced by?"], "zh": ["丰田是哪个国家生产的？"]},
    "neighborhood_answers": {"en": ["Japan"], "zh": ["日本"]},
}
METHODS = ("MEMLA", "ROME", "MEMIT", "FT-L", "FT-M", "LoRA", "MEND")


def _record_texts(tok: Any) -> list[str]:
    """Make ``tok`` note every text it is asked to tokenise (``tok(...)`` and ``tok.encode``)."""
    texts: list[str] = []
    base = type(tok)

    def note(text: Any) -> None:
        for t in text if isinstance(text, (list, tuple)) else [text]:
            if isinstance(t, str):
                texts.append(str(t))

    def call(self, text=None, *args, **kwargs):
        note(text)
        return base.__call__(self, text, *args, **kwargs)

    def encode(self, text, *args, **kwargs):
        note(text)
        return base.encode(self, text, *args, **kwargs)

    tok.__class__ = type(f"Recording{base.__name__}", (base,), {"__call__": call, "encode": encode})
    return texts


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def _hparams(alg: str, tmp_path: Path, tiny: Path) -> Any:
    from easyeditor import FTHyperParams, LoRAHyperParams, MEMITHyperParams, MENDHyperParams, ROMEHyperParams

    from memla_plugin.hparams import MEMLAHyperParams

    stats = {"mom2_n_samples": len(TINY_TEXTS), "stats_dir": str(tmp_path.parent / "stats"), "v_num_grad_steps": 2}
    if alg == "MEMLA":
        return MEMLAHyperParams.from_hparams(write_hparams(tmp_path, "MEMLA", "qwen2.5-0.5b.yaml", model_name=str(tiny),
                                                           device="cpu", max_steps=2))
    if alg == "ROME":
        return ROMEHyperParams.from_hparams(str(write_hparams(
            tmp_path, "ROME", "qwen2.5-0.5b.yaml", model_name=str(tiny), layers=[1], v_loss_layer=2,
            context_template_length_params=[[5, 5]], **stats)))
    if alg == "MEMIT":
        return MEMITHyperParams.from_hparams(str(write_hparams(
            tmp_path, "MEMIT", "qwen2.5-0.5b.yaml", model_name=str(tiny), layers=[0, 1], v_loss_layer=2,
            mom2_update_weight=1, **stats)))
    if alg in ("FT-L", "FT-M"):
        return FTHyperParams.from_hparams(str(write_hparams(
            tmp_path, "FT", f"qwen2.5-0.5b-{alg.lower()}.yaml", model_name=str(tiny), layers=[2], num_steps=1)))
    if alg == "LoRA":
        return LoRAHyperParams.from_hparams(str(write_hparams(
            tmp_path, "LoRA", "qwen2.5-0.5b.yaml", model_name=str(tiny), num_steps=1, lora_dropout=0.0)))
    return MENDHyperParams.from_hparams(str(write_hparams(
        tmp_path, "MEND", "qwen2.5-0.5b.yaml", model_name=str(tiny), tokenizer_name=str(tiny), rank=8,
        inner_params=[f"model.layers.2.mlp.{m}_proj.weight" for m in ("gate", "up", "down")])))


def _prepare(ee, alg: str, model: Any, tok: Any, hp: Any, tmp_path: Path) -> None:  # noqa: F811
    if alg in ("ROME", "MEMIT"):
        ee.prepare_baseline(alg, model, tok, hp, texts=TINY_TEXTS, progress=False)
    elif alg == "MEND":
        # several target tokens per item: MEND's gradient normaliser needs more than one sample per step
        items = [{"src": "The capital of Italy is", "alt": "Berlin is a city in Germany", "answers": ["Rome"],
                  "rephrase": "Rome is in",
                  "loc": "nq question: Toyota is produced by", "loc_ans": "Japan"}] * 4
        ee.prepare_baseline(alg, model, tok, hp, train_items=items, steps=3, out_dir=tmp_path.parent / "mend",
                            training_overrides={"accumulate_bs": 1})
    else:
        ee.prepare_baseline(alg, model, tok, hp)


@pytest.fixture
def memla_without_attribution(monkeypatch):
    """MEMLA with fixed neuron sets: attribution scores the bare target by design and trains nothing."""
    from memla_plugin import memla_main

    monkeypatch.setattr(memla_main, "_find_neurons", lambda *a, **k: {(1, 3), (2, 7)})


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("alg", METHODS)
def test_method_optimises_the_scored_target_ids(alg, lang, ee, tiny_dir, tmp_path, memla_without_attribution):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    hp = _hparams(alg, tmp_path, tiny_dir)
    _prepare(ee, alg, model, tok, hp, tmp_path)
    record = record_from_json(RECORD)
    request = request_from_record(record, lang)
    target = record.fact(lang).target_new
    scored_text, scored_ids = target_with_space(target, lang, tok), encode_target(tok, target, lang)

    plain = type(tok)
    texts = _record_texts(tok)
    try:
        ee.get_apply_fn(alg)(model, tok, [request], hp, copy=False, return_orig_weights=True)
    finally:
        tok.__class__ = plain  # stop recording before the check tokenises anything itself

    spelled = []
    for text in texts:
        if not text.endswith(target):
            continue
        start = len(text) - len(target)
        while start > 0 and text[start - 1].isspace():
            start -= 1
        prefix, form = text[:start], text[start:]
        spelled.append(form)
        assert form == scored_text, f"{alg} ({lang}) tokenises the target as {form!r}, the scorer as {scored_text!r}"
        assert _ids(tok, text) == (_ids(tok, prefix) if prefix else []) + scored_ids, (alg, lang, text)
    assert spelled, f"{alg} ({lang}): no tokenised text ended with the target {target!r}"


def test_scored_target_keeps_plain_text_behaviour():
    from memla_plugin.easyedit.targets import ScoredTarget

    zh, en = ScoredTarget("英语", "英语"), ScoredTarget("English", " English")
    assert " " + zh == "英语" and "prompt " + zh == "prompt英语" and "x" + zh == "x英语"
    assert " " + en == " English" and "prompt " + en == "prompt English" and zh[0] != " "
    import copy

    assert copy.deepcopy({"t": zh})["t"].scored == "英语"
