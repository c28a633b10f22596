"""memla-edit's judged answers: new / old / both / neither per language, the answer format, the table."""
from __future__ import annotations

from types import SimpleNamespace

from conftest_mkeb import BigramStub, word_tok

from memla_plugin.cli import edit as cli
from memla_plugin.mkeb.generation import which_target

# greedy after "?": A B C D A ...
CHAIN = {"?": {"A": 0.9}, "A": {"B": 0.9}, "B": {"C": 0.9}, "C": {"D": 0.9}, "D": {"A": 0.9}}
FACTS = {"en": {"prompt": "Q ?", "target_new": "D", "target_true": "A"}}


def test_which_target():
    assert which_target("He comes from Philadelphia.", "Philadelphia", "London", "en") == "new"
    assert which_target("London, not Philadelphia", "Philadelphia", "London", "en") == "both"
    assert which_target("他来自伦敦。", "费城", "伦敦", "zh") == "old"
    assert which_target("<|im_end|>", "Philadelphia", "London", "en") == "neither"


def test_probe_judges_the_bounded_answer():
    tok, model = word_tok(), BigramStub(CHAIN)
    three = cli.probe(model, tok, FACTS, ["en"], max_new_tokens=10, gen_tokens=3)["en"]
    assert (three["bounded_answer"], three["says"]) == ("A B C", "old")
    four = cli.probe(model, tok, FACTS, ["en"], max_new_tokens=10, gen_tokens=4)["en"]
    assert (four["bounded_answer"], four["says"]) == ("A B C D", "both")
    assert three["answer"] == four["answer"] == "A B C D"  # the shown answer keeps its own length rule
    assert "says" not in cli.probe(model, tok, FACTS, ["en"], max_new_tokens=10)["en"]


def test_answer_format_auto_follows_the_chat_template():
    chat = SimpleNamespace(chat_template="{{ messages }}")
    assert cli.answer_format_for("auto", chat, "bare") == "chat"
    assert cli.answer_format_for("auto", SimpleNamespace(chat_template=None), "preamble") == "preamble"
    assert cli.answer_format_for("bare", chat, "bare") == "bare"


def test_table_has_a_says_column():
    request = {"languages": {"en": FACTS["en"]}}
    row = {"answer": "London", "p_new": 1e-5, "p_true": 0.2, "new_beats_true": False, "says": "old"}
    after = {**row, "answer": "Philadelphia", "says": "new", "p_new": 0.3, "new_beats_true": True}
    lines = cli.format_table(request, {"en": row}, {"en": after}, ["en", "zh"]).splitlines()
    assert "says: before -> after" in lines[0]
    assert "old     -> new" in lines[2] and lines[2].rstrip().endswith("no  (1e-05/0.200) -> yes (0.300/0.200)")
    assert lines[3] == "zh    (no prompt in this language)"
    plain = cli.format_table(request, {"en": {k: v for k, v in row.items() if k != "says"}},
                             {"en": {k: v for k, v in after.items() if k != "says"}}, ["en"])
    assert "says" not in plain
