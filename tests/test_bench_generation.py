"""memla-mkeb's generation-based success settings: checks, run identity, what rows and the cache carry."""
from __future__ import annotations

import json

import pytest

from conftest_bench import bench_env, bench_model_dir, compose, read_rows  # noqa: F401
from memla_mkeb.app import run_task
from memla_mkeb.runner import plan_run, run_benchmark
from memla_plugin.mkeb.generation import GEN_MAX_NEW_TOKENS


@pytest.mark.parametrize("extra,message", [
    ("eval.gen_prompt_format=weird", "eval.gen_prompt_format='weird' unknown; use bare"),
    ("eval.gen_max_new_tokens=-1", "eval.gen_max_new_tokens=-1 must be at least 0"),
    ("eval.gen_max_new_tokens=many", "eval.gen_max_new_tokens='many': give an integer"),
])
def test_bad_generation_settings_give_one_line_errors(bench_env, capsys, extra, message):
    assert run_task(compose(bench_env.overrides(extra))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_defaults_keep_the_run_identity(bench_env):
    default = plan_run(compose(bench_env.overrides()))
    # conf/config.yaml spells out the scorer's default bound
    assert default.options.gen_max_new_tokens == GEN_MAX_NEW_TOKENS and default.options.gen_prompt_format is None
    same = plan_run(compose(bench_env.overrides(f"eval.gen_max_new_tokens={GEN_MAX_NEW_TOKENS}")))
    other = plan_run(compose(bench_env.overrides("eval.gen_max_new_tokens=5")))
    asked = plan_run(compose(bench_env.overrides("eval.gen_prompt_format=preamble")))
    assert same.base_id == default.base_id  # run dirs made before the setting resume
    assert len({default.base_id, other.base_id, asked.base_id}) == 3


def test_rows_and_unedited_cache_carry_the_answers(bench_env):
    run_benchmark(compose(bench_env.overrides("data.limit=1", "methods=[unedited]", "eval.gen_max_new_tokens=4",
                                              "eval.gen_prompt_format=preamble", "prompt_format=bare")))
    (row,) = read_rows(bench_env.run_dir)
    assert row["gen"] == {"max_new_tokens": 4, "prompt_format": "preamble"}
    assert row["prompt_format"] == "bare"  # the edits and the probability metrics keep the run's format
    assert set(row["scores"]) == {"en", "zh", "fr"}
    for sc in row["scores"].values():
        assert sc["gen_NS"] == 1.0 and sc["gen_ES"] in (0.0, 1.0) and 0.0 <= sc["gen_PS"] <= 1.0
    (cached,) = [json.loads(x) for x in (bench_env.run_dir / "unedited_cache.jsonl").read_text().splitlines()]
    assert set(cached["gen_loc"]) == {"en", "zh", "fr"}
    assert all(isinstance(a, str) for answers in cached["gen_loc"].values() for a in answers)
