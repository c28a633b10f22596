"""BMIKE-53 -> MKEB converter: the real 12-language CounterFact files, small WikiFactDiff-
and zsRE-layout files, split lists, and one-line CLI errors."""
from __future__ import annotations

import json

import pytest
from conftest_mkeb import bmike53_dir, bmike_item, write_bmike

from memla_plugin.mkeb import LANGS, load_mkeb, read_meta, read_test_ids, shipped_data_dir
from memla_plugin.mkeb.convert import convert_bmike53, main, make_splits, write_records
from memla_plugin.errors import DataValidationError

REAL = bmike53_dir()
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"BMIKE-53 CounterFact files not at {REAL} (set MEMLA_BMIKE53_DIR)")


@pytest.fixture(scope="module")
def real_conversion():
    return convert_bmike53(REAL)


@needs_real
def test_real_counterfact_all_languages_and_honest_drops(real_conversion):
    records, report = real_conversion
    assert report.n_input == 1031
    assert report.langs == list(LANGS)
    # BMIKE-53 lacks it/pt/pl for case 3428 and pl for case 3895: dropped, with the reason
    assert {d["case_id"]: d["reason"] for d in report.dropped} == {
        3428: "missing language(s): it, pt, pl",
        3895: "missing language(s): pl",
    }
    assert len(records) == 1031 - 2 == report.n_output
    assert all(rec.langs == LANGS for rec in records)
    assert report.unavailable_metrics == {}  # CounterFact has `old`: ES/PS available
    for lang in LANGS:
        s = report.per_lang[lang]
        assert s.templated + s.case_adjusted + s.untemplatable == 1029
        slotted = sum(r.edit[lang].has_subject_slot for r in records)
        assert slotted == s.templated + s.case_adjusted
    assert report.per_lang["en"].untemplatable == 0
    assert report.per_lang["pl"].untemplatable > 100  # Polish inflects names
    rec = next(r for r in records if r.example_id == 4482)
    assert rec.edit["en"].prompt == "Where does {} originate from?"
    assert rec.edit["en"].question == "Where does Spike Hughes originate from?"
    assert (rec.edit["zh"].target_new, rec.edit["zh"].target_true) == ("费城", "伦敦")
    assert rec.neighborhood_answers["ja"] == ["ロンドン"]
    assert rec.multi_hop_new_answer["en"] == "Cheesesteaks"


@needs_real
def test_untemplatable_facts_keep_full_question(real_conversion):
    records, _ = real_conversion
    for rec in records:
        for fact in rec.edit.values():
            if fact.has_subject_slot:
                assert "{}" in fact.prompt and fact.subject in fact.question
            else:
                assert "{}" not in fact.prompt and fact.question == fact.prompt


@needs_real
def test_shipped_data_equals_fresh_conversion(real_conversion, tmp_path):
    records, report = real_conversion
    out = tmp_path / "cf.json"
    write_records(records, out)
    shipped = shipped_data_dir() / "counterfact_mkeb.json"
    assert out.read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")
    meta = read_meta(shipped)
    assert meta["n_records"] == 1029 and meta["source"]["license"] == "MIT"
    assert meta["source"]["citation"].startswith("Nie et al.")


def test_shipped_splits_are_fixed_and_disjoint():
    records = load_mkeb(None)
    assert len(records) == 1029
    dev, test, train = read_test_ids("dev"), read_test_ids("test"), read_test_ids("train")
    assert (len(dev), len(test), len(train)) == (10, 819, 200)
    assert not set(dev) & set(test) and not set(dev) & set(train) and not set(test) & set(train)
    assert set(dev) | set(test) | set(train) == {str(r.example_id) for r in records}
    exp_dev, exp_test, exp_train = make_splits(records, seed=0, n_dev=10, n_train=200)
    assert dev == [str(i) for i in exp_dev] and test == [str(i) for i in exp_test]
    assert train == [str(i) for i in exp_train]
    dev_records = load_mkeb(None, "dev")
    assert [str(r.example_id) for r in dev_records] == dev
    assert all(f.has_subject_slot for r in dev_records for f in r.edit.values())


def test_heldout_text_is_exactly_the_train_split():
    from memla_plugin.easyedit.corpus import heldout_records

    held = heldout_records()
    assert sorted(str(r.example_id) for r in held.records) == sorted(read_test_ids("train"))
    assert held.source["fallback"] is None


def test_splits_refuse_a_train_split_that_leaves_no_test(tmp_path):
    records = load_mkeb(None, "dev")
    with pytest.raises(DataValidationError, match="n_train=10 leaves no test record"):
        make_splits(records, seed=0, n_dev=0, n_train=10)
    dev, test, train = make_splits(records, seed=0, n_dev=2, n_train=3)
    assert (len(dev), len(test), len(train)) == (2, 5, 3)


def _wfd_items():
    """WikiFactDiff layout with `old`: one clean, one inflected, one case-adjusted, one missing de."""
    en = [
        bmike_item(5, "en", subject="Bhagwant Mann", src="What position did Bhagwant Mann hold?"),
        bmike_item(8, "en", subject="Kaive Parish", src="In which municipality is Kaive Parish situated?"),
        bmike_item(9, "en", subject="the Lake", src="Where is The Lake?"),
        bmike_item(11, "en", subject="Dinara Wagner", src="For which country does Dinara Wagner compete?"),
    ]
    de = [
        bmike_item(5, "de", subject="Bhagwant Mann", src="Welche Position hatte Bhagwant Mann inne?"),
        bmike_item(8, "de", subject="Kaive Gemeinde", src="In welcher Gemeinde liegt die Kaiver Gemeinde?"),
        bmike_item(9, "de", subject="Der See", src="Wo liegt der See?"),
    ]
    zh = [bmike_item(c, "zh", subject="曼", src="曼在哪里？", alt="巴黎", old="伦敦") for c in (5, 8, 9, 11)]
    return {
        "en": [{"en": e} for e in en],
        "de": [{"en": e, "de": d} for e, d in zip(en, de)] + [{"en": en[3]}],
        "zh": [{"en": e, "zh": z} for e, z in zip(en, zh)],
    }


def test_wikifactdiff_layout(tmp_path):
    write_bmike(tmp_path, "wfd", _wfd_items(), name_lang={"zh": "zh-cn"})
    records, report = convert_bmike53(tmp_path)
    assert report.split == "wfd" and report.langs == ["en", "zh", "de"]
    assert [d["case_id"] for d in report.dropped] == [11] and "de" in report.dropped[0]["reason"]
    assert [r.example_id for r in records] == [5, 8, 9]
    de = report.per_lang["de"]
    assert (de.templated, de.case_adjusted, de.untemplatable) == (1, 1, 1)
    assert report.per_lang["en"].case_adjusted == 1
    r8, r9 = records[1], records[2]
    assert not r8.edit["de"].has_subject_slot and r8.edit["de"].prompt == "In welcher Gemeinde liegt die Kaiver Gemeinde?"
    assert r9.edit["de"].prompt == "Wo liegt {}?" and r9.edit["de"].subject == "der See"
    assert r9.edit["en"].question == "Where is The Lake?"
    assert report.unavailable_metrics == {}
    assert records[0].edit["zh"].target_true == "伦敦"


def test_zsre_layout_without_old(tmp_path, capsys):
    en = [bmike_item(c, "en", subject=f"Subj{c}", src=f"What family is Subj{c} in?", old=None) for c in (0, 1)]
    ja = [bmike_item(c, "ja", subject=f"Subj{c}", src=f"Subj{c}はどの科ですか？", old=None, alt="科") for c in (0, 1)]
    write_bmike(tmp_path / "zsre", "zsre", {"ja": [{"en": e, "ja": j} for e, j in zip(en, ja)]})
    out = tmp_path / "out" / "zsre_mkeb.json"
    assert main(["bmike53", "--src", str(tmp_path / "zsre"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unavailable metrics: ES:" in printed and "PS:" in printed
    meta = read_meta(out)
    assert set(meta["unavailable_metrics"]) == {"ES", "PS"}
    assert meta["langs"] == ["en", "ja"] and meta["source"]["files"]["en"].startswith("(en parts")
    records = load_mkeb(out)
    assert len(records) == 2 and all(f.target_true is None for r in records for f in r.edit.values())
    assert records[0].edit["ja"].prompt == "{}はどの科ですか？"


def test_langs_option_and_split_choice(tmp_path):
    items = _wfd_items()
    write_bmike(tmp_path, "wfd", items)
    write_bmike(tmp_path, "zsre", {"zh": items["zh"]})
    assert main(["bmike53", "--src", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2  # two splits: ambiguous
    records, report = convert_bmike53(tmp_path, langs=["en", "zh"], split="wfd")
    assert report.langs == ["en", "zh"] and len(records) == 4 and report.dropped == []


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: None, "not a directory"),
        (lambda d: d.mkdir(), "no BMIKE-53 files"),
        (lambda d: (d.mkdir(), (d / "cf_test_fr.json").write_text("{oops")), "not valid JSON"),
        (lambda d: (d.mkdir(), (d / "cf_test_fr.json").write_text('{"a": 1}')), "expected a JSON list"),
        (lambda d: (d.mkdir(), (d / "cf_test_fr.json").write_text('[{"fr": {"subject": "x"}}]')), "'case_id' missing"),
    ],
)
def test_cli_bad_input_one_line_error(tmp_path, capsys, setup, expected):
    src = tmp_path / "src"
    setup(src)
    assert main(["bmike53", "--src", str(src), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("memla-mkeb-convert: error:")


def test_cli_missing_language_file(tmp_path, capsys):
    write_bmike(tmp_path, "wfd", {"de": _wfd_items()["de"]})
    assert main(["bmike53", "--src", str(tmp_path), "--out", str(tmp_path / "o.json"), "--langs", "en", "de", "fr"]) == 2
    assert "no file for language 'fr'" in capsys.readouterr().err


def test_mkeb_subcommand_validates_and_subsets(tmp_path, capsys):
    from conftest_mkeb import mkeb_record

    src = tmp_path / "MLiKE_v2.json"
    src.write_text(json.dumps([mkeb_record(1), mkeb_record(2), mkeb_record(3)]), encoding="utf-8")
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n1\n")
    out = tmp_path / "sub.json"
    assert main(["mkeb", "--src", str(src), "--out", str(out), "--test-ids", str(ids)]) == 0
    assert [r.example_id for r in load_mkeb(out)] == [3, 1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([mkeb_record(1, edit={"en": {"prompt": "no slot", "subject": "s", "target_new": "t"}})]))
    assert main(["mkeb", "--src", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "record 1, lang 'en', field 'edit.prompt'" in err and "Traceback" not in err
