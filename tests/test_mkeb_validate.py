"""Loader and validation: every problem names record id, language and field."""
from __future__ import annotations

import json

import pytest
from conftest_mkeb import mkeb_record

from memla_plugin.errors import DataValidationError, MissingLanguageError
from memla_plugin.mkeb import LANGS, MKEBRecord, load_mkeb, validate
from memla_plugin.mkeb.loader import record_from_json


def _write(tmp_path, records):
    p = tmp_path / "mkeb.json"
    p.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return p


def test_load_valid_file_with_test_ids(tmp_path):
    p = _write(tmp_path, [mkeb_record(i) for i in (10, 11, 12)])
    ids = tmp_path / "test_ids.txt"
    ids.write_text("# chosen\n12\n\n10\n")
    records = load_mkeb(p, ids)
    assert [r.example_id for r in records] == [12, 10]  # test-id order
    r = records[0]
    assert isinstance(r, MKEBRecord) and r.langs == ("en", "zh")
    assert r.edit["en"].question == "Where does Sen come from?" and r.edit["en"].target_true == "London"
    assert r.multi_hop_new_answer["zh"] == "Croissant"
    assert [x.example_id for x in load_mkeb(p, [11])] == [11]


def test_unknown_test_id(tmp_path):
    p = _write(tmp_path, [mkeb_record(1)])
    with pytest.raises(DataValidationError, match=r"1 test id\(s\) not in the data: 99"):
        load_mkeb(p, ["99"])


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r["edit"].pop("zh"), "record 7, lang 'zh': language missing in field 'edit'"),
        (lambda r: r["edit"]["zh"].pop("subject"), "record 7, lang 'zh': field 'edit.subject' missing"),
        (lambda r: r["edit"]["en"].update(prompt="Where does S come from?"),
         "record 7, lang 'en', field 'edit.prompt': prompt has no '{}' subject slot"),
        (lambda r: r["edit"]["zh"].update(target_new="  "), "record 7, lang 'zh', field 'edit.target_new': empty target"),
        (lambda r: r["edit"]["en"].update(target_true=""), "record 7, lang 'en', field 'edit.target_true': empty target"),
        (lambda r: r["neighborhood_answers"]["en"].append("Rome"),
         "record 7, lang 'en', field 'neighborhood_answers': 2 answers for 1 neighborhood prompts"),
        (lambda r: r["paraphrase_prompts"].pop("zh"), "record 7, lang 'zh': language missing in field 'paraphrase_prompts'"),
        (lambda r: r.pop("neighborhood_prompts"), "record 7: field 'neighborhood_prompts' missing"),
        (lambda r: r["multi_hop_new_answer"].update(en=""), "record 7, lang 'en', field 'multi_hop_new_answer': empty target"),
    ],
)
def test_validation_names_id_lang_field(tmp_path, mutate, expected):
    rec = mkeb_record(7)
    mutate(rec)
    with pytest.raises(DataValidationError) as info:
        load_mkeb(_write(tmp_path, [mkeb_record(6), rec]), langs=("en", "zh"))
    assert expected in str(info.value)
    assert "problem(s)" in str(info.value).splitlines()[0]


def test_all_problems_collected_and_duplicates():
    bad = mkeb_record(3)
    bad["edit"]["en"]["target_new"] = ""
    bad["edit"]["zh"]["prompt"] = "no slot"
    with pytest.raises(DataValidationError) as info:
        validate([mkeb_record(3), bad], langs=("en", "zh"))
    msg = str(info.value)
    assert "3 problem(s)" in msg
    assert "field 'example_id' duplicated" in msg and "'edit.target_new'" in msg and "'edit.prompt'" in msg


def test_missing_language_against_default_langs():
    with pytest.raises(DataValidationError, match="record 1, lang 'fr': language missing in field 'edit'"):
        validate([mkeb_record(1)])  # default: all 12 MKEB languages
    validate([mkeb_record(1, langs=LANGS)])


def test_no_subject_slot_flag_allows_full_question():
    rec = mkeb_record(5)
    rec["edit"]["en"].update(prompt="Woher kommt Sens?", has_subject_slot=False)
    validate([rec], langs=("en", "zh"))
    fact = record_from_json(rec).edit["en"]
    assert not fact.has_subject_slot and fact.question == "Woher kommt Sens?"
    rec["edit"]["en"]["prompt"] = "Where does {} come from?"
    with pytest.raises(DataValidationError, match="has_subject_slot=false but prompt contains"):
        validate([rec], langs=("en", "zh"))


def test_optional_fields_and_counterfact_style_targets():
    rec = mkeb_record(8)
    del rec["multi_hop_questions"], rec["multi_hop_new_answer"]
    rec["edit"]["en"]["target_new"] = {"str": "Paris"}
    rec["edit"]["zh"].pop("target_true")  # zsRE-like: no true target
    validate([rec], langs=("en", "zh"))
    r = record_from_json(rec)
    assert r.edit["en"].target_new == "Paris" and r.edit["zh"].target_true is None
    assert r.multi_hop_questions == {}
    with pytest.raises(MissingLanguageError, match="record 8: no edit in language 'ko'"):
        r.fact("ko")


def test_round_trip_json(tmp_path):
    r = record_from_json(mkeb_record(9))
    again = record_from_json(json.loads(json.dumps(r.to_json())))
    assert again == r


def test_unreadable_files(tmp_path):
    with pytest.raises(DataValidationError, match="cannot read"):
        load_mkeb(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("[1,")
    with pytest.raises(DataValidationError, match="not valid JSON"):
        load_mkeb(tmp_path / "x.json")
