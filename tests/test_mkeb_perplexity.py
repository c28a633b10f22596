"""Held-out perplexity (memla_plugin.mkeb.perplexity) against values worked out by hand on a stub model."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from memla_plugin.mkeb.perplexity import Perplexity, heldout_texts, perplexity, sequence_nll, summary

#: the stub's next-token distribution over its 4-token vocabulary, whatever came before
P = torch.tensor([0.5, 0.25, 0.125, 0.125])


class StubLM(torch.nn.Module):
    """Logits log P at every position, so the NLL of a token is -log P[token] exactly."""

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        b, n = input_ids.shape
        return SimpleNamespace(logits=P.log().expand(b, n, 4).clone())


class StubTok:
    """Characters a..d are tokens 0..3 (no special tokens); pad/eos is token 3."""

    pad_token_id = eos_token_id = 3
    bos_token_id = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) - ord("a") for c in text]}


def test_hand_checked_perplexity_on_a_stub_model():
    # predicted tokens: "abc" -> b, c (-log .25, -log .125); "dd" -> d (-log .125): 2 + 3 + 3 bits over 3 tokens
    got = perplexity(StubLM(), StubTok(), {"en": ["abc", "dd"], "fr": ["a"]}, batch_size=2)
    assert got["en"].tokens == 3 and got["en"].texts == 2
    assert got["en"].nll == pytest.approx(8 * math.log(2))
    assert got["en"].ppl == pytest.approx(2 ** (8 / 3))  # 6.3496...
    assert got["fr"].tokens == 0 and math.isnan(got["fr"].ppl)  # one token: nothing to predict
    s = summary(got)
    assert s["mean_ppl"] == pytest.approx(2 ** (8 / 3)) and s["langs"]["en"]["texts"] == 2


def test_left_padding_changes_nothing(tiny_tok, qwen2_model, gpt2_model):
    """Batched (padded) and one-by-one NLLs agree on the real tiny models."""
    seqs = [tiny_tok(t)["input_ids"] for t in ("The capital of France is Paris.", "Rome", "Berlin est en Allemagne.")]
    for model in (qwen2_model, gpt2_model):
        batched = sequence_nll(model, seqs, pad_id=tiny_tok.pad_token_id, batch_size=3)
        alone = [sequence_nll(model, [s], pad_id=tiny_tok.pad_token_id, batch_size=1)[0] for s in seqs]
        for (a, n), (b, m) in zip(batched, alone):
            assert n == m and a == pytest.approx(b, rel=1e-5, abs=1e-5)


def test_heldout_texts_join_question_and_answer():
    rec = SimpleNamespace(neighborhood_prompts={"en": ["The capital of Italy is"], "zh": ["意大利的首都是"]},
                          neighborhood_answers={"en": ["Rome"], "zh": ["罗马"]})
    assert heldout_texts([rec], ["en", "zh", "fr"]) == {"en": ["The capital of Italy is Rome"],
                                                        "zh": ["意大利的首都是罗马"], "fr": []}


def test_perplexity_json_form():
    p = Perplexity(nll=2 * math.log(3), tokens=2, texts=1)
    assert p.to_json() == {"ppl": pytest.approx(3.0), "nll": p.nll, "tokens": 2, "texts": 1}


def test_perplexity_runs_every_module_in_eval_mode(make_tiny_model, tiny_tok):
    """A model handed back with a submodule in training mode (EasyEdit's LoRA wrapper and its adapter's
    dropout) is measured as in eval mode, and every module keeps its mode afterwards."""
    model = make_tiny_model("gpt2").eval()
    texts = {"en": ["The capital of France is Paris.", "Rome is in Italy."]}
    ref = perplexity(model, tiny_tok, texts)["en"]
    drop = model.transformer.drop
    drop.p = 0.5
    model.train()
    model.transformer.h[0].eval()
    for seed in range(5):  # live dropout would change the NLL from one draw to the next
        torch.manual_seed(seed)
        assert perplexity(model, tiny_tok, texts)["en"] == ref, seed
    assert model.training and drop.training and not model.transformer.h[0].training
