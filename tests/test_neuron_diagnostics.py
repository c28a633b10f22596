"""Neuron diagnostics (benchmarks/mkeb/memla_mkeb/neuron_stats.py) on a hand-made neuron cache."""
from __future__ import annotations

import argparse

import pytest

pytest.importorskip("memla_mkeb")

from memla_mkeb import neuron_stats as ns  # noqa: E402

from memla_plugin.neurons import NeuronCache  # noqa: E402

SETS = {
    "en": {"1": {(0, 1), (0, 2), (5, 3)}, "2": {(0, 1), (7, 7)}},
    "zh": {"1": {(0, 1), (5, 3)}, "2": {(9, 9)}},
    "fr": {"1": {(0, 1), (0, 2)}, "2": {(7, 7)}},
}


def test_sizes_overlaps_and_likn_rules():
    records = ns.common_records(SETS, ["en", "zh", "fr"])
    assert records == ["1", "2"]
    assert ns.set_sizes(SETS, ["en"], records)["en"]["mean"] == 2.5
    ov = ns.pair_overlaps(SETS, ["en", "zh", "fr"], records)
    assert ov["en&zh"]["mean_shared"] == 1.0 and ov["en&fr"]["mean_shared"] == 1.5
    inter = ns.likn_lskn(SETS, "en", ["en", "zh", "fr"], records)
    assert inter["likn"]["mean"] == 0.5 and inter["likn"]["zero_share"] == 0.5  # {(0, 1)} and nothing
    two = ns.likn_lskn(SETS, "en", ["en", "zh", "fr"], records, min_langs=2)
    assert two["likn"]["mean"] == 2.0 and two["lskn"]["mean"] == 0.5  # record 2 keeps (0, 1) en-only


def test_generic_share_and_layers():
    shares = {(0, 1): 0.5, (7, 7): 0.1, (0, 2): 0.2}
    g = ns.generic_share(SETS, "en", ["1", "2"], shares, 0.15)
    assert g["n_generic"] == 2 and g["mean_share"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert ns.layer_histogram(SETS["en"].values(), 8) == [3, 0, 0, 0, 0, 1, 0, 1]
    assert ns.leave_one_out_shares(SETS["en"], "1") == {(0, 1): 1.0, (7, 7): 1.0}


def test_cli_reads_a_cache(tmp_path, capsys, repo_script):
    cache = NeuronCache(tmp_path, "m__k")
    for lang, per in SETS.items():
        for rid, found in per.items():
            cache.put(rid, lang, "", found)
    mod = repo_script("benchmarks/mkeb/neuron_diagnostics.py")
    args = argparse.Namespace(neuron_dir=str(tmp_path), key="m__k", records="all", langs="en,zh,fr", edit_lang="en",
                              min_langs=2, background="", max_share=0.1, filter=False, num_layers=10, json=None,
                              loo_share=0.4, compare="m__k")
    d = mod.diagnose(args)
    assert d["records"] == 2 and d["shared_by_2"]["likn"]["mean"] == 2.0
    assert "LIKN (shared_by_2)" in mod.to_markdown(d)
    assert d["agreement_with"]["en"]["mean"] == 1.0  # a setting compared with itself
    assert "Same records under m__k" in mod.to_markdown(d)


def test_leave_one_out_generic():
    sets = {"a": {(0, 1), (0, 2)}, "b": {(0, 1)}, "c": {(0, 1), (3, 3)}}
    g = ns.leave_one_out_generic(sets, ["a", "b", "c"], 0.5)  # (0, 1) is in both others of every record
    assert g["mean_share"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3) and g["records_with_3_or_more"] == 0


def test_setting_agreement_is_the_per_record_jaccard():
    other = {"en": {"1": {(0, 1), (0, 2), (5, 3)}, "2": {(9, 9)}, "3": {(1, 1)}}, "zh": {}}
    got = ns.setting_agreement(SETS, other, ["en", "zh"])
    assert got["en"]["n"] == 2  # record 3 is not in SETS
    assert got["en"]["mean"] == pytest.approx((1.0 + 0.0) / 2) and got["en"]["same_set"] == 0.5
    assert got["zh"] == {"n": 0}



def test_generic_line_names_the_share_with_and_without_the_filter(tmp_path, repo_script):
    cache = NeuronCache(tmp_path / "cache", "m__k")
    for lang, per in SETS.items():
        for rid, found in per.items():
            cache.put(rid, lang, "", found)
    background = NeuronCache(tmp_path / "bg", "m__k")
    for n, found in enumerate([{(0, 1)}, {(0, 1)}, {(7, 7)}, {(3, 3)}]):  # (0, 1) in 2 of 4 facts
        for lang in ("en", "zh", "fr"):
            background.put(100 + n, lang, "", found)
    mod = repo_script("benchmarks/mkeb/neuron_diagnostics.py")
    for filtered in (False, True):
        args = argparse.Namespace(neuron_dir=str(tmp_path / "cache"), key="m__k", records="all", langs="en,zh,fr",
                                  edit_lang="en", min_langs=0, background=str(tmp_path / "bg"), max_share=0.3,
                                  filter=filtered, num_layers=10, json=None, loo_share=None, compare=None)
        d = mod.diagnose(args)
        assert d["generic_before_filter"]["n_generic"] == 1  # (0, 1): 0.5 > 0.3; the others 0.25
        line = [l for l in mod.to_markdown(d).splitlines() if l.startswith("Generic neurons")][0]
        assert line.startswith("Generic neurons (selected for more than 0.3 of the 4 background facts")
        assert ("counted before the filter" in line) == filtered
