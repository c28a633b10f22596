"""LIKN/LSKN set algebra (paper §3.2) and the neuron cache in the authors' JSON format."""
from __future__ import annotations

import json

import pytest

from memla_plugin.errors import MissingLanguageError
from memla_plugin.neurons import NeuronCache, NeuronSets, build_neuron_sets, cache_key, group_by_layer

EN = {(0, 1), (0, 5), (2, 7), (3, 3), (3, 4)}
ZH = {(0, 1), (2, 7), (3, 4), (1, 9)}
FR = {(0, 1), (2, 7), (3, 3), (3, 4), (5, 0)}
DE = {(0, 1), (0, 2), (3, 4), (4, 4)}


def test_likn_is_intersection_and_lskn_is_edit_lang_minus_likn():
    sets = build_neuron_sets({"en": EN, "zh": ZH, "fr": FR, "de": DE}, "de", ["en", "zh", "fr"])
    assert isinstance(sets, NeuronSets)
    assert sets.likn == {0: [1], 2: [7], 3: [4]}
    assert sets.lskn == {0: [2], 4: [4]}  # de minus {(0,1),(2,7),(3,4)}
    assert sets.n_likn == 3 and sets.n_lskn == 2 and sets.layers() == [0, 2, 3, 4]


def test_edit_language_among_identification_languages():
    sets = build_neuron_sets({"en": EN, "zh": ZH, "fr": FR}, "en", ["en", "zh", "fr"])
    assert sets.likn == {0: [1], 2: [7], 3: [4]}
    assert sets.lskn == {0: [5], 3: [3]}
    flat = lambda g: {(l, i) for l, v in g.items() for i in v}  # noqa: E731
    assert flat(sets.likn) | flat(sets.lskn) == EN and not flat(sets.likn) & flat(sets.lskn)


def test_no_identification_languages_means_all_specific():
    sets = build_neuron_sets({"en": EN}, "en", [])
    assert sets.likn == {} and sets.lskn == group_by_layer(EN)


def test_disjoint_languages_give_empty_likn():
    sets = build_neuron_sets({"en": {(0, 0)}, "zh": {(1, 1)}, "fr": {(0, 0)}}, "en", ["en", "zh", "fr"])
    assert sets.likn == {} and sets.lskn == {0: [0]} and not sets.is_empty()
    assert build_neuron_sets({"en": set()}, "en", []).is_empty()


def test_missing_language_is_named():
    with pytest.raises(MissingLanguageError, match="zh"):
        build_neuron_sets({"en": EN, "fr": FR}, "en", ["en", "zh", "fr"])
    with pytest.raises(MissingLanguageError, match="de"):
        build_neuron_sets({"en": EN}, "de", ["en"])


def test_group_by_layer_sorts_and_dedups():
    assert group_by_layer([(3, 2), (1, 5), (3, 1), (3, 2)]) == {1: [5], 3: [1, 2]}


# ----------------------------------------------------------------------------- cache
def test_cache_round_trip_in_authors_format(tmp_path):
    cache = NeuronCache(tmp_path, "Qwen2.5-Coder-0.5B-Instruct")
    assert cache.get(12, "en") is None
    cache.put(12, "en", "P36", {(3, 4), (0, 1)})
    cache.put(13, "en", "P17", [(1, 2)])
    cache.put(12, "zh", "P36", [(2, 2)])
    raw = json.loads(cache.path("en").read_text(encoding="utf-8"))
    assert raw == [
        {"example_id": 12, "relation_name": "P36", "neurons": [[0, 1], [3, 4]]},
        {"example_id": 13, "relation_name": "P17", "neurons": [[1, 2]]},
    ]
    fresh = NeuronCache(tmp_path, "Qwen2.5-Coder-0.5B-Instruct")
    assert fresh.get(12, "en") == {(0, 1), (3, 4)}
    assert fresh.get("13", "en") == {(1, 2)}  # ids compare as strings
    assert fresh.get(12, "zh") == {(2, 2)} and fresh.relation(12, "zh") == "P36"
    cache.put(12, "en", "P36", [(5, 5)])  # replace
    assert NeuronCache(tmp_path, "Qwen2.5-Coder-0.5B-Instruct").get(12, "en") == {(5, 5)}
    assert not list(cache.path("en").parent.glob("*.tmp"))


def test_cache_reads_files_written_by_the_authors_code(tmp_path):
    cache = NeuronCache(tmp_path, "mGPT", filename="{lang}_neurons.json")
    path = cache.path("fr")
    path.parent.mkdir(parents=True)
    # indented, extra keys, float indices, a missing relation name and one broken entry
    path.write_text(json.dumps([
        {"example_id": 0, "relation_name": "P103", "neurons": [[10, 2048], [23, 7]], "prompt": "x"},
        {"example_id": "1", "neurons": [[1.0, 2.0]]},
        {"relation_name": "P1", "neurons": [[0, 0]]},
    ], indent=4), encoding="utf-8")
    assert path.name == "fr_neurons.json"
    assert cache.get(0, "fr") == {(10, 2048), (23, 7)}
    assert cache.get(1, "fr") == {(1, 2)} and cache.relation(1, "fr") == ""
    assert sorted(cache.example_ids("fr")) == ["0", "1"]
    cache.put(2, "fr", "P1", [(0, 0)])  # keeps what was there
    assert [e["example_id"] for e in json.loads(path.read_text())] == [0, "1", 2]


def test_corrupt_cache_file_is_moved_aside_not_lost(tmp_path):
    cache = NeuronCache(tmp_path, "m")
    cache.path("en").parent.mkdir(parents=True)
    cache.path("en").write_text('[{"example_id": 1, "neur', encoding="utf-8")
    assert cache.get(1, "en") is None
    assert cache.path("en").with_name("en.json.corrupt").exists()
    cache.put(1, "en", "r", [(0, 0)])
    assert NeuronCache(tmp_path, "m").get(1, "en") == {(0, 0)}


def test_cache_key_names_settings():
    key = cache_key("/models/Qwen2.5-Coder-0.5B-Instruct/", 20, "amig", 0.3)
    assert key == "Qwen2.5-Coder-0.5B-Instruct__amig-m20-t0.3"
    assert cache_key("x", 20, "zero", 0.3, layers=[3, 1]) == "x__zero-m20-t0.3-L1.3"


def test_flat_layout_when_filename_names_the_model(tmp_path):
    cache = NeuronCache(tmp_path, "mGPT", filename="{model}_{lang}.json")
    cache.put(3, "ja", "P19", [(4, 4)])
    assert cache.path("ja") == tmp_path / "mGPT_ja.json" and cache.path("ja").exists()
