"""The reliability suite's results, computed once per test session and shared by its test files.

``tests/test_reliability_inputs.py`` and ``tests/test_reliability_faults.py`` assert on these
results; ``tests/test_reliability_doc.py`` writes them into docs/RELIABILITY.md. Each part runs
the first time a test asks for it, so any one of those files can run alone.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from conftest_bench import compose, make_bench_env

_DONE: dict[str, Any] = {}
TIMES: dict[str, float] = {}  # part -> seconds it took (printed by the tests, not written to the doc)

KILL_TRIALS = 20
KILL_SEED = 2026
RACE_TRIALS = 4


def matrix(tmp_factory: Any, model_dir: Path, model: Any, tok: Any) -> dict[str, Any]:
    """Every bad-input case (reliability_matrix.CASES + RUN_DIR_CASES) -> its Outcome."""
    if "matrix" not in _DONE:
        from memla_mkeb.runner import run_benchmark
        from reliability_matrix import CASES, RUN_DIR_CASES, run_case

        t0 = time.perf_counter()
        root = Path(tmp_factory.mktemp("reliability_matrix"))
        env = make_bench_env(root / "env", model_dir)
        finished = root / "finished"
        run_benchmark(compose(env.overrides("data.limit=2", run_dir=finished)), model=copy.deepcopy(model), tok=tok)
        with pytest.MonkeyPatch.context() as mp:
            _DONE["matrix"] = {c.name: run_case(c, env, root / c.name, mp.setattr, finished)
                               for c in CASES + RUN_DIR_CASES}
        TIMES["matrix"] = time.perf_counter() - t0
    return _DONE["matrix"]


def faults(tmp_factory: Any, model_dir: Path, model: Any, tok: Any) -> Any:
    """The kill -9 and race trials (reliability_faults.FaultReport)."""
    if "faults" not in _DONE:
        from memla_mkeb import envinfo
        from reliability_faults import kill_trials, race_trials, reference_run

        t0 = time.perf_counter()
        root = Path(tmp_factory.mktemp("reliability_faults"))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(envinfo, "release_freed_memory", lambda: None)
            _, reference, full_s = reference_run(root, model_dir, model, tok)
            report = kill_trials(root, model_dir, model, tok, reference, full_s, n=KILL_TRIALS, seed=KILL_SEED)
            race_trials(root, model_dir, model, tok, reference, report, n=RACE_TRIALS)
        _DONE["faults"] = report
        TIMES["faults"] = time.perf_counter() - t0
    return _DONE["faults"]


def caches(tmp_factory: Any, model_dir: Path, model: Any, tok: Any, request: dict[str, Any]) -> list[Any]:
    """The damaged-cache cases (reliability_caches.CacheOutcome), in a private $MEMLA_CACHE."""
    if "caches" not in _DONE:
        from reliability_caches import mend_cases, model_cache_cases, neuron_cache_case, old_manifest_gets_digests

        t0 = time.perf_counter()
        root = Path(tmp_factory.mktemp("reliability_caches"))
        env = make_bench_env(root / "env", model_dir)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MEMLA_CACHE", str(root / "cache"))
            results = model_cache_cases(env, tok, mp.setattr)
            results.append(old_manifest_gets_digests(env, tok))
        results.append(neuron_cache_case(root, copy.deepcopy(model), tok, request))
        results.extend(mend_cases(root / "mend", model.config))
        _DONE["caches"] = results
        TIMES["caches"] = time.perf_counter() - t0
    return _DONE["caches"]


__all__ = ["KILL_SEED", "KILL_TRIALS", "RACE_TRIALS", "TIMES", "caches", "faults", "matrix"]
