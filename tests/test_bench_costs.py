"""Edit costs from rows: attribution read from the neuron cache is added back; per-row peak memory.

The report test at the end writes a run dir where a MEMLA ablation reads every attribution from the
cache that the MEMLA rows filled, and one record's attribution was never measured.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from memla_mkeb import costs
from memla_mkeb.report import write_report

FIXED = Path(__file__).parent / "data" / "bench_report" / "run"


def _memla_row(record: str, computed: dict[str, float], cached: list[str], edit_s: float, method: str = "memla",
               **extra) -> dict:
    langs = {**{l: 3 for l in computed}, **{l: 2 for l in cached}}
    return {"method": method, "record_id": record, "edit_s": edit_s, "status": "ok",
            "edit_stats": {"attribution_s_per_lang": computed, "cache_hits": len(cached), "neurons_per_lang": langs},
            **extra}


def test_cached_languages_are_those_with_neurons_but_no_time():
    row = _memla_row("7", {"en": 10.0}, ["zh", "fr"], 30.0)
    assert costs.cached_languages(row) == ["fr", "zh"]
    assert costs.cached_languages(_memla_row("7", {"en": 1.0, "zh": 2.0}, [], 5.0)) == []
    # rows of other editors (no edit_stats) and failed edits with partial stats
    assert costs.cached_languages({"record_id": "7", "edit_s": 1.0}) == []
    assert costs.cached_languages({"record_id": "7", "edit_stats": {"cache_hits": 1}}) == []


def test_cached_attribution_is_added_back_from_the_row_that_measured_it():
    rows = [
        _memla_row("1", {"en": 10.0, "zh": 20.0}, [], 50.0),
        _memla_row("2", {"en": 12.0}, ["zh"], 40.0),  # zh of record 2 was cached by a killed sitting
        _memla_row("1", {"en": 14.0}, [], 0.0, method="other"),  # a second measurement: the mean is used
    ]
    index = costs.attribution_index(rows)
    assert index == {("1", "en"): 12.0, ("1", "zh"): 20.0, ("2", "en"): 12.0}

    ablation = [_memla_row("1", {}, ["en", "zh"], 8.0), _memla_row("2", {}, ["en"], 6.0)]
    ca = costs.with_cached_attribution(ablation, index)
    assert (ca.edits, ca.cached_edits, ca.cached, ca.found, ca.complete) == (2, 2, 3, 3, True)
    assert ca.mean_edit_s == pytest.approx((8 + 12 + 20 + 6 + 12) / 2)

    # one cached attribution nobody measured: no mean rather than a mean that leaves it out
    ca = costs.with_cached_attribution(rows[:2], index)
    assert (ca.cached_edits, ca.cached, ca.found, ca.complete, ca.mean_edit_s) == (1, 1, 0, False, None)


def test_row_peaks_count_only_rows_that_measured_them():
    mib = costs.GIB / costs.MIB
    rows = [{"row_peak_rss_mib": 4 * mib, "row_start_rss_mib": 3 * mib, "peak_rss_mib": 6 * mib},
            {"row_peak_rss_mib": 5 * mib, "row_start_rss_mib": 3.5 * mib, "peak_rss_mib": 6.5 * mib},
            {"peak_rss_mib": 7 * mib}]  # an older harness: process peak only
    p = costs.row_peaks(rows)
    assert (p.rows, p.measured) == (3, 2)
    assert (p.mean_gib, p.max_gib, p.max_start_gib) == pytest.approx((4.5, 5.0, 3.5))
    none = costs.row_peaks([{"edit_s": 1.0}])
    assert (none.measured, none.mean_gib, none.max_gib) == (0, None, None)


def test_report_adds_cached_attribution_and_shows_row_peaks(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXED, run)
    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(l) for l in lines if l.strip().endswith("}")]
    extra = []
    # MEMLA rows 1 and 2 measured en+zh; row 3's zh came from a cache nobody in this report measured
    times = {"1": ({"en": 10.0, "zh": 20.0}, []), "2": ({"en": 11.0, "zh": 21.0}, []), "3": ({"en": 12.0}, ["zh"])}
    for r in rows:
        if r["method"] == "memla":
            computed, cached = times[r["record_id"]]
            r["edit_stats"] = _memla_row(r["record_id"], computed, cached, r["edit_s"])["edit_stats"]
            r["row_peak_rss_mib"], r["row_start_rss_mib"] = 4096.0, 3072.0
    for rid in ("1", "2"):
        ab = {**next(r for r in rows if r["method"] == "memla" and r["record_id"] == rid)}
        ab.update(method="memla_no_mask", key=f"memla_no_mask|en|{rid}", cfg_id="cfg-no-mask", edit_s=5.0,
                  edit_stats=_memla_row(rid, {}, ["en", "zh"], 5.0)["edit_stats"])
        extra.append(ab)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + extra), encoding="utf-8")
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan["methods"].append({**next(m for m in plan["methods"] if m["name"] == "memla"), "name": "memla_no_mask"})
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")

    md = write_report([run], n_boot=200, seed=0, plots=False).read_text(encoding="utf-8")
    timing = {r["method"]: r for r in csv.DictReader(io.StringIO(
        (run / "report_files" / "timing.csv").read_text(encoding="utf-8")))}
    # the ablation: 5 s per edit as run; with its cached en+zh put back: 5 + (10+20) and 5 + (11+21)
    assert timing["memla_no_mask"]["edit_s_mean"] == "5.000"
    assert timing["memla_no_mask"]["edit_s_with_cached_attribution_mean"] == "36.000"
    assert "| memla_no_mask | 2 | 5.00 |" in md and "| 2 (4 languages) | 36.00 |" in md
    # MEMLA itself: one cached attribution without a measurement -> no mean, and the report says why
    assert timing["memla"]["cached_attributions"] == "1"
    assert timing["memla"]["edit_s_with_cached_attribution_mean"] == ""
    assert "| 1 (1 language) | n/a (1 of 1 unmeasured) |" in md
    # editors without a neuron cache
    assert timing["rome"]["cached_attribution_edits"] == "0"
    # peak memory: only MEMLA's rows carry per-row peaks
    assert "## Peak memory" in md
    assert "| memla | 3 of 3 | 4.00 | 4.00 | 3.00 |" in md
    assert "| rome | 0 of 3 | n/a | n/a | n/a |" in md
    mem = (run / "report_files" / "memory.csv").read_text(encoding="utf-8")
    assert mem.splitlines()[0] == "method,rows,rows_measured,row_peak_gib_mean,row_peak_gib_max,row_start_gib_max"
