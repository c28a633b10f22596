"""MKEBDataset requests (EasyEdit shape + every language) and aggregation."""
from __future__ import annotations

import json

import pytest
from conftest_mkeb import mkeb_record

from memla_plugin.errors import MissingLanguageError
from memla_plugin.mkeb import LANGS, MKEBDataset
from memla_plugin.mkeb.aggregate import cross_matrix, format_table, mean_scores, summarize

# keys EasyEdit's editors/utils.py:_prepare_requests builds for one request (pinned 14cea82)
EASYEDIT_KEYS = {"prompt", "target_new", "ground_truth", "portability", "locality", "subject", "rephrase_prompt"}


@pytest.fixture
def data_file(tmp_path):
    recs = [mkeb_record(1, langs=("en", "zh", "fr")), mkeb_record(2, langs=("en", "zh", "fr"))]
    recs[1]["edit"]["fr"].update(prompt="D'où vient Sfrs ?", has_subject_slot=False)
    del recs[1]["multi_hop_questions"], recs[1]["multi_hop_new_answer"]
    p = tmp_path / "mkeb.json"
    p.write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return p


def test_requests_in_easyedit_shape(data_file):
    ds = MKEBDataset(data_file, edit_lang="zh")
    assert len(ds) == 2
    req = ds[0]
    assert EASYEDIT_KEYS <= set(req)
    assert req["case_id"] == 1 and req["edit_lang"] == "zh"
    assert req["prompt"] == "Where does Szh come from?" and req["subject"] in req["prompt"]
    assert (req["target_new"], req["ground_truth"]) == ("Paris", "London")
    assert isinstance(req["rephrase_prompt"], str)
    loc = req["locality"]["neighborhood"]
    assert loc == {"prompt": ["Where was T born?"], "ground_truth": ["Berlin"]}
    port = req["portability"]["multi_hop"]
    assert len(port["prompt"]) == len(port["ground_truth"]) == 1 and port["ground_truth"] == ["Croissant"]
    assert list(req["languages"]) == ["en", "zh", "fr"]
    en = req["languages"]["en"]
    assert en["prompt"] == "Where does Sen come from?" and en["template"] == "Where does {} come from?"
    assert (en["target_new"], en["target_true"], en["paraphrases"]) == ("Paris", "London", ["Home town of Sen?"])
    assert req["has_subject_slot"] is True


def test_unslotted_edit_language_and_missing_multi_hop(data_file):
    req = MKEBDataset(data_file, edit_lang="fr")[1]
    assert req["has_subject_slot"] is False and req["prompt"] == "D'où vient Sfrs ?"
    assert req["portability"] == {}


def test_missing_edit_language(data_file):
    with pytest.raises(MissingLanguageError, match="'ko'"):
        MKEBDataset(data_file, edit_lang="ko")


def test_hf_export(data_file):
    hf = MKEBDataset(data_file, edit_lang="en").to_hf_dataset()
    assert hf.num_rows == 2
    assert hf[0]["case_id"] == "1" and hf[0]["locality"]["neighborhood"]["ground_truth"] == ["Berlin"]
    assert hf[1]["portability"] is None and hf[0]["languages"]["fr"]["subject"] == "Sfr"


def test_shipped_dev_subset():
    ds = MKEBDataset(None, edit_lang="en", test_ids="dev")
    assert len(ds) == 10 and all(list(r["languages"]) == list(LANGS) for r in ds)
    assert all(r["subject"] in r["prompt"] for r in ds)


def _scores(es_by_lang):
    return {lang: {"ES": v, "PS": None if lang == "th" else v / 2} for lang, v in es_by_lang.items()}


def test_aggregation():
    results = [
        ("en", _scores({"en": 1.0, "zh": 0.0, "th": 1.0})),
        ("en", _scores({"en": 1.0, "zh": 1.0, "th": 0.0})),
        ("zh", _scores({"en": 0.0, "zh": 1.0, "th": 0.0})),
        {"edit_lang": "zh", "scores": _scores({"en": 1.0, "zh": 1.0, "th": 1.0})},
    ]
    m = cross_matrix(results, ["ES", "PS"])
    assert m["ES"]["en"] == {"en": 1.0, "zh": 0.5, "th": 0.5}
    assert m["ES"]["zh"] == {"en": 0.5, "zh": 1.0, "th": 0.5}
    assert m["PS"]["en"]["th"] is None  # unavailable everywhere -> None, not 0
    s = summarize(results, ["ES", "PS"])
    assert s["en"]["ES"] == {"self": 1.0, "others": 0.5}
    assert s["zh"]["PS"] == {"self": 0.5, "others": 0.25}  # th has no PS: mean over en only
    per_lang = mean_scores([r[1] if isinstance(r, tuple) else r["scores"] for r in results], ["ES"])
    assert per_lang["en"]["ES"] == 0.75
    table = format_table(per_lang, ["ES"])
    assert table.splitlines()[0].split() == ["lang", "ES"] and "75.0" in table and table.splitlines()[-1].startswith("mean")
