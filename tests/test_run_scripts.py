"""The benchmark's run scripts, dry-run (MEMLA_PYTHON=echo prints each harness call instead of running it).

What is checked: every method a script names exists in the harness catalog (a typo would only show
hours into a series), the lanes split the records into strided shards, and the test-split series
refuses to start before its hparams are pinned.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "mkeb" / "results"
CATALOG = set(yaml.safe_load((REPO / "benchmarks/mkeb/memla_mkeb/conf/catalog/default.yaml").read_text("utf-8")))

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the run scripts are bash")


def _dry(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "MEMLA_PYTHON": "echo", **env}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full, timeout=60)


def _calls(out: str) -> list[str]:
    return [line for line in out.splitlines() if "memla_mkeb.app" in line]


def _methods(call: str) -> list[str]:
    return re.search(r"methods=\[([^\]]*)\]", call).group(1).split(",")


@pytest.mark.parametrize("only", [None, "preset", "memla_ig5"])
def test_dev_chosen_names_only_catalog_methods(tmp_path, only):
    env = {"DEV_CHOSEN_DIR": str(tmp_path), **({"ONLY": only} if only else {})}
    res = _dry(RESULTS / "dev_chosen" / "run.sh", "2", **env)
    assert res.returncode == 0, res.stderr
    calls = _calls(res.stdout)
    assert [c.rsplit(" ", 1)[-1] for c in calls] == ["data.limit=1", "data.limit=2"]  # one record per sitting
    names = _methods(calls[0])
    assert set(names) <= CATALOG, set(names) - CATALOG
    if only == "preset":
        assert {m for m in CATALOG if m.startswith("memla_refined")} <= set(names)


def test_preset_table_lists_every_switch_ablation_of_the_catalog(tmp_path):
    res = _dry(RESULTS / "dev_chosen" / "run.sh", "preset", DEV_CHOSEN_DIR=str(tmp_path))
    listed = set(re.search(r"--methods (\S+)", res.stdout).group(1).split(","))
    ablations = {m for m in CATALOG if m.startswith("memla_refined_no_")}
    assert ablations and ablations <= listed


def test_lanes_split_records_into_strided_shards(tmp_path):
    res = _dry(RESULTS / "dev_chosen" / "run.sh", "5", LANES="2", LANE="1", DEV_CHOSEN_DIR=str(tmp_path))
    calls = _calls(res.stdout)
    assert [re.search(r"data.limit=(\d+)", c).group(1) for c in calls] == ["2", "4"]
    assert all("shard.count=2" in c and "shard.index=1" in c and "run.threads=1" in c for c in calls)


def test_protocol2_refuses_before_pin_then_names_catalog_methods(tmp_path):
    script = RESULTS / "protocol2" / "run.sh"
    res = _dry(script, "en", "1", PROTOCOL2_DIR=str(tmp_path))
    assert res.returncode != 0 and "pin" in res.stderr
    (tmp_path / "hparams" / "MEMLA").mkdir(parents=True)  # what `pin` leaves (without copying files here)
    for series in ("en", "zh_fr", "ablations"):
        res = _dry(script, series, "1", PROTOCOL2_DIR=str(tmp_path))
        assert res.returncode == 0, res.stderr
        (call,) = _calls(res.stdout)
        assert set(_methods(call)) <= CATALOG, set(_methods(call)) - CATALOG
        assert "data=test" in call and "prompt_format=preamble" in call and f"run_dir={tmp_path}/{series}" in call
