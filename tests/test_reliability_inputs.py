"""Bad inputs to every entry point end in one line naming the thing, write nothing, load no model.

The cases are declared in ``tests/reliability_matrix.py`` (settings, data files, every method's
hparams, resumed run dirs with damaged or foreign rows, ``memla-edit``, ``memla-mkeb-convert``)
and run once per session (``tests/reliability_results.py``); each test here checks one case's
outcome against the promises that docs/RELIABILITY.md states. A few cases also run as real
processes, to show the exit status and stderr a shell sees.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

import reliability_results
from conftest_bench import bench_model_dir  # noqa: F401
from reliability_matrix import CASES, RUN_DIR_CASES

ALL = CASES + RUN_DIR_CASES


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, bench_model_dir, _pristine_models, tiny_tok):  # noqa: F811
    return reliability_results.matrix(tmp_path_factory, bench_model_dir, _pristine_models["qwen2"], tiny_tok)


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_bad_input_is_refused_in_one_line_before_any_model_load(outcomes, case):
    out = outcomes[case.name]
    assert out.error == "", f"escaped the entry point: {out.error}"
    assert out.status == case.status, out.message
    assert out.lines == 1 and out.message.startswith(f"{case.entry}: error: "), out.message
    assert not out.traceback
    assert case.expect in out.message, out.message
    assert out.wrote == [], f"files written or changed: {out.wrote}"
    assert not out.made_run_dir, "a run dir was created for a refused run"
    assert not out.model_loaded, "the input was refused only after a model load"


def test_matrix_covers_every_entry_point_and_group(outcomes):
    assert {c.entry for c in ALL} == {"memla-mkeb", "memla-edit", "memla-mkeb-convert"}
    assert {c.group for c in ALL} >= {"settings", "data", "hparams", "run dir", "memla-edit", "memla-mkeb-convert"}
    assert len({c.name for c in ALL}) == len(ALL) == len(outcomes)


@pytest.mark.parametrize("args,needle", [
    (["seed=abc"], "seed='abc': give an integer"),
    (["++catalog.memla.overrides={apply_scale:0}"], "catalog.memla: apply_scale must be positive"),
])
def test_the_command_line_sees_status_2_and_one_line(tmp_path, bench_model_dir, args, needle):  # noqa: F811
    from conftest_bench import make_bench_env

    env = make_bench_env(tmp_path, bench_model_dir)
    proc = subprocess.run([sys.executable, "-m", "memla_mkeb.app", *env.overrides(*args)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert not env.run_dir.exists()
