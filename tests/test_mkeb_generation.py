"""Generation-based success (memla_plugin.mkeb.generation): normalisation, bounded answers, neighbours."""
from __future__ import annotations

import pytest
import torch
from conftest_mkeb import BigramStub, word_tok

from memla_plugin.mkeb.generation import answer_text, contains_answer, normalise_answer, same_answer
from memla_plugin.mkeb.loader import record_from_json
from memla_plugin.mkeb.metric_registry import METRIC_REGISTRY
from memla_plugin.mkeb.metrics import ReferenceCache, score_record, unedited_reference
from memla_plugin.mkeb.scoring import MetricConfigError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("answer, target, lang, expected", [
    ("He comes from Philadelphia.", "Philadelphia", "en", True),      # at the end, with punctuation
    ("PHILADELPHIA!!", "philadelphia", "en", True),                    # case
    ("Born in  New\nYork , USA", "New York", "en", True),               # whitespace and punctuation inside
    ("He is from Londonderry", "London", "en", False),                 # whole words where words are spaced
    ("Il vient de Philadelphie (Pennsylvanie).", "Philadelphie", "fr", True),
    ("斯派克·休斯出生于费城，美国。", "费城", "zh", True),                    # inside a sentence, no word boundaries
    ("彼はフィラデルフィアの出身です。", "フィラデルフィア", "ja", True),
    ("彼はロンドンの出身です", "フィラデルフィア", "ja", False),
    ("ＡＢＣ社です", "abc", "ja", True),                                   # full-width letters (NFKC) and case
    ("เขามาจาก ฟิลาเดลเฟีย ครับ", "ฟิลาเดลเฟีย", "th", True),
    ("Philadelphia", "", "en", False),                                 # no target: nothing to find
])
def test_contains_after_normalisation(answer, target, lang, expected):
    assert contains_answer(answer, target, lang) is expected


def test_normalisation_and_equality():
    assert normalise_answer("  Paris,\tFrance! ", "en") == "paris france"
    assert normalise_answer("巴黎 ， 法国。", "zh") == "巴黎法国"
    assert same_answer("London.", "london", "en")
    assert not same_answer("London", "London, England", "en")


# "?" -> A -> B -> C -> D -> A ... (greedy); "!" -> C; after "x" (unknown, a special token) anything
CHAIN = {"?": {"A": 0.9}, "!": {"C": 0.9}, "A": {"B": 0.9}, "B": {"C": 0.9}, "C": {"D": 0.9}, "D": {"A": 0.9}}


def chain_record():
    return record_from_json({
        "example_id": 7,
        "edit": {"en": {"prompt": "{} ?", "subject": "Q", "target_new": "D", "target_true": "A"}},
        "paraphrase_prompts": {"en": ["R ?", "R !"]},
        "neighborhood_prompts": {"en": ["N ?", "N !"]},
        "neighborhood_answers": {"en": ["A", "C"]},
        "multi_hop_questions": {"en": []},
        "multi_hop_new_answer": {},
    })


def test_bounded_length_decides_what_the_answer_contains():
    tok, model, rec = word_tok(), BigramStub(CHAIN), chain_record()
    short = score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=3)["en"]
    # "Q ?" -> "A B C": names the old answer A, not yet the new D
    assert (short["gen_ES"], short["gen_ES_old"]) == (0.0, 1.0)
    # paraphrases: "R ?" -> "A B C" (old), "R !" -> "C D A" (both)
    assert (short["gen_PS"], short["gen_PS_old"]) == (0.5, 1.0)
    longer = score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=4)["en"]
    assert longer["gen_ES"] == 1.0 and longer["gen_PS"] == 1.0  # "A B C D": the fourth token is D
    off = score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=0)["en"]
    assert all(off[m] is None for m in METRIC_REGISTRY if METRIC_REGISTRY[m].family == "generation")
    assert off["ES"] == short["ES"]  # the other metrics do not depend on the answers


def test_answer_is_the_first_non_empty_line():
    from memla_plugin.mkeb.generation import first_line

    # under the preamble format the model answers, then asks itself the next question
    assert first_line(" Paris\nQ: What is the capital of Italy?\nA: Rome") == "Paris"
    assert first_line("\n\n  罗马。 \n下一个") == "罗马。"
    assert first_line("") == first_line("\n \n") == ""


def test_answer_stops_at_a_special_token():
    tok = word_tok()
    ids = tok("A B x C")["input_ids"]  # "x" is the unknown token, a special token of this tokenizer
    assert answer_text(tok, ids) == "A B"
    assert answer_text(tok, tok("x A")["input_ids"]) == ""


def test_neighbourhood_answers_compared_with_the_unedited_model(tmp_path):
    tok, rec = word_tok(), chain_record()
    unedited = BigramStub(CHAIN)
    ref = unedited_reference(unedited, tok, rec, ["en"], device="cpu", gen_max_new_tokens=3)
    assert ref.gen_loc["en"] == ["A B C", "C D A"]
    assert ref.scores["en"]["gen_NS"] == 1.0
    # after the edit "N ?" still answers "A B C", but after "!" the model now says "B ..."
    edited = BigramStub({**CHAIN, "!": {"B": 0.9}})
    scores = score_record(edited, tok, rec, ["en"], device="cpu", reference=ref, gen_max_new_tokens=3)["en"]
    assert scores["gen_NS"] == 0.5
    assert score_record(edited, tok, rec, ["en"], device="cpu", gen_max_new_tokens=3)["en"]["gen_NS"] is None
    # the reference cache keeps the answers and recomputes a reference stored without them
    cache = ReferenceCache(tmp_path / "ref.json", model_key="stub")
    first = cache.get_or_compute(unedited, tok, [rec], ["en"], device="cpu", gen_max_new_tokens=3)[0]
    again = ReferenceCache(tmp_path / "ref.json", model_key="stub").get(7, ["en"])
    assert again is not None and again.gen_loc == first.gen_loc == ref.gen_loc


def test_answers_asked_under_their_own_template():
    tok, model, rec = word_tok(), BigramStub(CHAIN), chain_record()
    # every question followed by "!" instead of its own last word: "Q ? !" -> "C D A" names D
    scores = score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=3, gen_template="{} !")["en"]
    assert scores["gen_ES"] == 1.0
    base = score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=3)["en"]
    assert scores["ES"] == base["ES"]  # the probability metrics keep prompt_template
    with pytest.raises(MetricConfigError, match="gen_template"):
        score_record(model, tok, rec, ["en"], device="cpu", gen_template="no slot")


def _prefix_verdicts(tok, text):
    from memla_plugin.mkeb.generation import answer_complete

    complete, ids = answer_complete(tok), tok(text, add_special_tokens=False)["input_ids"]
    return ids, [complete(ids[:k]) for k in range(1, len(ids) + 1)]


@pytest.mark.parametrize("text", [" Paris\nQ: What is", "\n \n罗马。\n下一个", " Rome, Italy\r\nA", " Lyon<|endoftext|> B"])
def test_an_answer_is_complete_exactly_when_later_tokens_cannot_change_it(tiny_tok, text):
    ids, verdicts = _prefix_verdicts(tiny_tok, text)
    assert verdicts[-1] and verdicts == sorted(verdicts)  # becomes true once, then stays true
    for k, done in enumerate(verdicts, start=1):
        if done:  # whatever follows, the answer is already the full text's
            assert answer_text(tiny_tok, ids[:k]) == answer_text(tiny_tok, ids)
    # and it turns true at the token that ends the answer: a line break after text, or a special token
    end = ids[verdicts.index(True)]
    assert end in tiny_tok.all_special_ids or len(f"a{tiny_tok.decode([end])}b".splitlines()) > 1


def test_an_unfinished_line_is_not_complete(tiny_tok):
    _, verdicts = _prefix_verdicts(tiny_tok, " Paris is the capital")
    assert not any(verdicts)  # no line break and no special token: more tokens can lengthen the answer


def test_answer_decodes_stop_early_with_the_same_tokens_and_answers():
    from memla_plugin.mkeb import scoring
    from memla_plugin.mkeb.engine import greedy_decode

    # "?" -> A -> B -> x (a special token: the answer is over) -> A -> B -> x ...; "!" -> C -> D -> x -> A ...
    tok, model = word_tok(), BigramStub({"?": {"A": 0.9}, "A": {"B": 0.9}, "B": {"x": 0.9}, "x": {"A": 0.9},
                                          "!": {"C": 0.9}, "C": {"D": 0.9}, "D": {"x": 0.9}})
    q, e = tok("Q ?")["input_ids"], tok("Q !")["input_ids"]
    from memla_plugin.mkeb.generation import answer_complete

    full = greedy_decode(model, [q, e], [10, 4], pad_id=0)
    model.calls.clear()
    short = greedy_decode(model, [q, e], [10, 4], pad_id=0, until=[answer_complete(tok), None])
    assert short[1] == full[1] == tok("C D x A")["input_ids"]  # a row without a test gets all its tokens
    # the answer row ends at its special token: a prefix of the full decode, with the same answer
    assert short[0] == full[0][:3] == tok("A B x")["input_ids"]
    assert answer_text(tok, short[0]) == answer_text(tok, full[0]) == "A B"
    assert len(model.calls) == 4  # prompt + 3 steps (the 4-token row), not prompt + 9

    rec = chain_record()
    counts = {}
    orig = scoring._Plan.decode_until
    for name, until in [("full", lambda self, tok: [None] * len(self.decodes)), ("early", orig)]:
        scoring._Plan.decode_until = until
        try:
            model.calls.clear()
            counts[name] = (score_record(model, tok, rec, ["en"], device="cpu", gen_max_new_tokens=10)["en"],
                            len(model.calls))
        finally:
            scoring._Plan.decode_until = orig
    assert counts["early"][0] == counts["full"][0]  # every metric, the generation-based ones included
    assert counts["early"][1] < counts["full"][1]
