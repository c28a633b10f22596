"""kill -9 at seeded points of a run, two runs racing on one run dir, damaged caches.

The trials themselves are in ``tests/reliability_faults.py`` and ``tests/reliability_caches.py``
and run once per session (``tests/reliability_results.py``). Promised: after any kill and a
rerun, every row of an uninterrupted run is there exactly once with the same scores; racing
runs write each row once and a refused run leaves the run dir's metadata alone; a damaged
model cache is refused before any score is computed.
"""
from __future__ import annotations

import pytest

import reliability_results
from conftest_bench import bench_model_dir  # noqa: F401
from reliability_faults import KILL_KINDS


@pytest.fixture(scope="module")
def report(tmp_path_factory, bench_model_dir, _pristine_models, tiny_tok):  # noqa: F811
    return reliability_results.faults(tmp_path_factory, bench_model_dir, _pristine_models["qwen2"], tiny_tok)


@pytest.fixture(scope="module")
def caches(tmp_path_factory, bench_model_dir, _pristine_models, tiny_tok):  # noqa: F811
    request = {
        "case_id": 7, "prompt": "The capital of France is", "subject": "France", "target_new": "Rome",
        "ground_truth": "Paris", "rephrase_prompt": "Paris is a city in", "locality": {}, "portability": {},
        "edit_lang": "en",
        "languages": {
            "en": {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome",
                   "target_true": "Paris", "paraphrases": []},
            "zh": {"prompt": "法国的首都是", "subject": "法国", "target_new": "罗马", "target_true": "巴黎",
                   "paraphrases": []},
            "fr": {"prompt": "La capitale de la France est", "subject": "France", "target_new": "Rome",
                   "target_true": "Paris", "paraphrases": []},
        },
    }
    return reliability_results.caches(tmp_path_factory, bench_model_dir, _pristine_models["qwen2"], tiny_tok, request)


def test_kill_9_loses_and_duplicates_no_row(report):
    assert sum(report.kills.values()) == reliability_results.KILL_TRIALS
    assert set(report.kills) == set(KILL_KINDS)
    assert report.problems == []
    assert (report.lost, report.duplicated, report.differing) == (0, 0, 0)
    assert report.rows_expected > 0
    # the self-inflicted kills all died before the end; a partial line was left and cut at least once
    assert report.killed_before_end >= sum(n for k, n in report.kills.items() if k != "at a random moment")
    assert report.partial_lines_left >= report.kills["mid-way through writing a row"]


def test_racing_runs_write_each_row_once(report):
    assert report.race_duplicates == 0 and report.race_meta_changed == 0
    assert sum(report.races.values()) == 2 * reliability_results.RACE_TRIALS
    assert report.races["refused: run dir in use"] + report.races["refused: other settings"] >= 1


@pytest.mark.parametrize("name", ["cache-digest-mismatch", "cache-old-manifest", "cache-nan-weights",
                                  "cache-old-manifest-intact", "neuron-cache-out-of-range", "mend-pickled-code",
                                  "mend-checkpoint-changed"])
def test_damaged_caches_are_caught(caches, name):
    found = {c.name: c for c in caches}
    assert found[name].held, f"{found[name].result} | {found[name].detail}"
