"""Provenance in result rows: the protocol version and the code commit (with its dirty flag)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest_bench import bench_env, bench_model_dir, compose, read_rows  # noqa: F401
from memla_mkeb.protocol import PROTOCOL, commit_counts, protocols_of, row_protocol
from memla_mkeb.runner import run_benchmark

REPO = Path(__file__).resolve().parents[1]


def test_rows_carry_protocol_and_code_commit(bench_env):  # noqa: F811
    run_benchmark(compose(bench_env.overrides("data.limit=1", "methods=[unedited]")))
    rows = read_rows(bench_env.run_dir)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert rows and all(r["protocol"] == PROTOCOL for r in rows)
    assert all(r["code"]["commit"] == head and isinstance(r["code"]["dirty"], bool) for r in rows)
    assert all("NS_cf" in sc and "ES_norm" in sc for r in rows for sc in r["scores"].values())


def test_rows_without_the_field_are_protocol_1():
    old, new = {"method": "m"}, {"method": "m", "protocol": 2, "code": {"commit": "a" * 40, "dirty": True}}
    assert row_protocol(old) == 1 and row_protocol(new) == 2
    assert protocols_of([old, new, new]) == [1, 2]
    assert commit_counts([old, new, new]) == {"aaaaaaaaaaaa (dirty)": 2}


def test_plugin_and_harness_from_two_checkouts_are_refused(tmp_path):
    from memla_mkeb.protocol import check_one_checkout
    from memla_mkeb.settings import BenchConfigError

    for tree in ("a", "b"):
        (tmp_path / tree / ".git").mkdir(parents=True)
    plugin_a = tmp_path / "a" / "memla_plugin" / "__init__.py"
    harness_a = tmp_path / "a" / "benchmarks" / "mkeb" / "memla_mkeb" / "protocol.py"
    harness_b = tmp_path / "b" / "benchmarks" / "mkeb" / "memla_mkeb" / "protocol.py"
    check_one_checkout(str(plugin_a), str(harness_a))  # one checkout: fine
    with pytest.raises(BenchConfigError, match="PYTHONSAFEPATH") as err:
        check_one_checkout(str(plugin_a), str(harness_b))
    assert str(tmp_path / "a") in str(err.value) and str(tmp_path / "b") in str(err.value)
    check_one_checkout(str(tmp_path / "site" / "memla_plugin" / "__init__.py"), str(harness_b))  # installed: not checked
    check_one_checkout("/memla_plugin/__init__.py", "/protocol.py")  # too near the root to be a checkout
    check_one_checkout()  # this test session's own imports come from one checkout
