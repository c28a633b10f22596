"""CounterFact-style metrics on the stub LM: NS_cf and the length-normalised ES/PS/NS_cf, hand-computed.

The bigram stub makes every probability a product of table entries (tests/conftest_mkeb.py).
The record's targets: target_new "A D" (two tokens), target_true "C" (one token).
"""
from __future__ import annotations

import copy
import math

import pytest
from conftest_mkeb import BigramStub, word_tok
from test_mkeb_metrics import PROBS, stub_record

from memla_plugin.mkeb.engine import TFResult
from memla_plugin.mkeb.metric_registry import COUNTERFACT_METRICS, METRIC_REGISTRY
from memla_plugin.mkeb.metrics import score_record


def test_counterfact_neighbourhood_and_length_normalised_views_on_stub():
    scores = score_record(BigramStub(PROBS), word_tok(), stub_record(), ["en", "zh"], device="cpu")
    en = scores["en"]
    # Neighbourhood "N ?": P(A D) = .5 * .2 = .10 < P(C) = .3 -> true kept (1).
    # Neighbourhood "N !": P(A D) = .8 * .2 = .16 > P(C) = .1 -> new bled in (0).
    assert en["NS_cf"] == pytest.approx(0.5)
    # Per token: "N ?" sqrt(.10) = .316 > .3 and "N !" sqrt(.16) = .4 > .1: new ahead on both.
    assert en["NS_cf_norm"] == 0.0
    # Edit "Q ?": summed .10 < .30 (ES 0) but per token .316 > .30 (ES_norm 1).
    assert en["ES"] == 0.0 and en["ES_norm"] == 1.0
    # Paraphrases "R ?" (.316 > .3) and "R !" (.4 > .1): both 1 per token; summed only "R !".
    assert en["PS"] == pytest.approx(0.5) and en["PS_norm"] == 1.0
    # zh has no target_true: none of these comparisons can be made.
    assert all(scores["zh"][m] is None for m in COUNTERFACT_METRICS)


def test_edit_bleeding_into_neighbours_lowers_ns_cf():
    bled = BigramStub({**PROBS, "?": {"A": 0.9, "C": 0.05}, "A": {"D": 0.9}})  # "A D" now likely after "?"
    en = score_record(bled, word_tok(), stub_record(), ["en"], device="cpu")["en"]
    assert en["NS_cf"] == 0.0 and en["ES"] == 1.0


def test_mean_logprob_divides_by_target_length():
    r = TFResult(logprob=math.log(0.1), argmax=[1, 2], correct=0.5)
    assert r.mean_logprob == pytest.approx(math.log(0.1) / 2)


def test_new_metrics_are_declared_once_with_their_needs():
    assert COUNTERFACT_METRICS == ("NS_cf", "ES_norm", "PS_norm", "NS_cf_norm")
    assert all("target_true" in METRIC_REGISTRY[m].needs for m in COUNTERFACT_METRICS)


def test_reference_cache_recomputes_references_that_lack_a_metric(tmp_path):
    from memla_plugin.mkeb.metrics import ReferenceCache

    tok, rec, model = word_tok(), stub_record(), BigramStub(PROBS)
    cache = ReferenceCache(tmp_path / "ref.json", model_key="stub")
    expected = copy.deepcopy(cache.get_or_compute(model, tok, [rec], ["en"], device="cpu")[0].scores)
    raw = cache._data[cache._key(rec.example_id, ["en"])]
    del raw["scores"]["en"]["NS_cf"]  # as written before NS_cf existed
    assert cache.get(rec.example_id, ["en"]) is None
    again = cache.get_or_compute(model, tok, [rec], ["en"], device="cpu")[0]
    assert again.scores == expected and again.scores["en"]["NS_cf"] == pytest.approx(0.5)
