"""The benchmark's run scripts, dry-run (MEMLA_PYTHON=echo prints each harness call instead of running it).

What is checked: every method a script names exists in the harness catalog (a typo would only show
hours into a series), the lanes split the records into strided shards and skip finished sittings, and
the test-split series refuses to start before its hparams are pinned.
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


def test_lanes_skip_a_sitting_whose_rows_are_written(tmp_path):
    """lanes.sh asks sitting_done.py first and starts the harness only when that does not answer "nothing to
    do" (here a stand-in python says so for record 1 only)."""
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\nif [[ "$1" == *sitting_done.py && " $* " == *" data.limit=1 "* ]]; '
                    'then echo "nothing to do"; else echo "$@"; fi\n', encoding="utf-8")
    fake.chmod(0o755)
    res = _dry(RESULTS / "dev_chosen" / "run.sh", "3", DEV_CHOSEN_DIR=str(tmp_path), MEMLA_PYTHON=str(fake))
    assert res.returncode == 0, res.stderr
    assert [c.rsplit(" ", 1)[-1] for c in _calls(res.stdout)] == ["data.limit=2", "data.limit=3"]
    assert "every row of the sitting data.limit=1 is written, skipped" in res.stderr
    # each sitting that runs first keeps a copy of the plan it will overwrite (keep_plan.py on its run dir)
    lines = res.stdout.splitlines()
    kept = [i for i, x in enumerate(lines) if "keep_plan.py" in x]
    assert [lines[i + 1].rsplit(" ", 1)[-1] for i in kept] == ["data.limit=2", "data.limit=3"]
    assert all(f" {tmp_path}" in lines[i] for i in kept)


def test_keep_plan_keeps_one_plan_per_method_set(tmp_path, results_script):
    """keep_plan.py (run by lanes.sh before each sitting): a sitting with fewer methods overwrites the live
    plan; the copy made before keeps the other methods' settings for the report (it reads every plan*.json)."""
    import json

    mod = results_script("keep_plan.py")
    live = tmp_path / "plan.shard0of2.json"
    live.write_text(json.dumps({"method_ids": {"memla": "a", "mend": "b"}}), encoding="utf-8")
    (first,) = mod.keep_plans(tmp_path)
    assert mod.keep_plans(tmp_path) == []  # the same plan again: nothing new
    live.write_text(json.dumps({"method_ids": {"memla": "a"}}), encoding="utf-8")  # a WITHOUT=mend sitting
    (second,) = mod.keep_plans(tmp_path)
    assert first != second and "mend" in json.loads(first.read_text(encoding="utf-8"))["method_ids"]
    assert {p.name for p in tmp_path.iterdir()} == {live.name, first.name, second.name}
    assert mod.keep_plans(tmp_path) == [] and mod.main([str(tmp_path)]) == 0  # copies are never copied again
    assert mod.main([]) == 2
    from memla_mkeb.planning import method_set_plan_name  # the harness names its own copies the same way

    assert first.name == method_set_plan_name(live.name, ["mend", "memla"])


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


def test_keep_rule_turns_off_switches_that_do_not_help(repo_script):
    """preset_table --decide: a switch stays only when the preset's composite beats its ablation's."""
    mod = repo_script("benchmarks/mkeb/preset_table.py")

    def row(method, rid, es, ns):  # en + one other language; "others" = the zh values
        sc = {"ES": es, "PS": es, "NS_cf": ns}
        return {"method": method, "record_id": rid, "source": "en", "status": "ok",
                "scores": {"en": {"ES": 1.0, "PS": 1.0, "NS_cf": 1.0}, "zh": sc}}

    rows = []
    for rid in ("1", "2"):
        rows += [row("p", rid, 0.6, 0.8), row("p_no_helps", rid, 0.4, 0.8),   # off: lower ES -> the switch helps
                 row("p_no_same", rid, 0.6, 0.8),                              # identical: difference 0 -> off
                 row("p_no_hurts", rid, 0.6, 0.9)]                             # ablation better -> off
    got = {s: (n, stays) for s, n, _, stays in mod.decisions(rows, ["p", "p_no_helps", "p_no_same", "p_no_hurts",
                                                                     "p_no_missing"], "p", "en", 50, 0)}
    assert got == {"helps": (2, True), "same": (2, False), "hurts": (2, False), "missing": (0, None)}


def test_series_queue_names_catalog_methods_and_splits_the_work(tmp_path):
    """protocol2/series.sh on two lanes: every call names catalog methods; record-split steps take one shard
    each; a one-sequence step is split by methods, the two lanes together editing every method once under
    two different result files. MEND's rows of en and zh/fr come last, after both lanes met and lane 0 moved
    rows of another checkpoint aside (mend_rows.py)."""
    (tmp_path / "hparams" / "MEMLA").mkdir(parents=True)
    sync = tmp_path / "sync"
    sync.mkdir()
    (sync / "memla-series-mend.1").touch()  # lane 1 "waits" at the mend step while the dry run of lane 0 goes
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "memla-mkeb").write_text('#!/usr/bin/env bash\necho memla_mkeb.app "$@" "code=$PYTHONPATH"\n',
                                     encoding="utf-8")
    (fake / "memla-mkeb").chmod(0o755)
    calls, dry_out = {}, {}
    for lane in ("0", "1"):
        res = _dry(RESULTS / "protocol2" / "series.sh", LANE=lane, PROTOCOL2_DIR=str(tmp_path), MEMLA_BIN=str(fake),
                   SERIES_SYNC_DIR=str(sync), PYTHONPATH="/pinned", SEQ50_TREE=str(tmp_path / "p2seq50"))
        assert res.returncode == 0, res.stderr
        calls[lane], dry_out[lane] = _calls(res.stdout), res.stdout
        for call in calls[lane]:
            assert set(_methods(call)) <= CATALOG, (call, set(_methods(call)) - CATALOG)
            assert "run.threads=1" in call, call
            assert "shard.count=2" in call or "sequential.n=" in call, call  # only a sequence runs whole
        assert f"series lane {lane}: done" in res.stdout
        # the baselines' statistics and MEND checkpoint are built from the pinned hparams before en grows to 60
        # (each lane builds one part first, lane 0 the statistics, then finds the other's)
        prepare = [line for line in res.stdout.splitlines() if "memla_plugin.easyedit.prepare" in line]
        parts = [f"-m memla_plugin.easyedit.prepare --methods {m} --hparams-dir {tmp_path}/hparams"
                 for m in ("ROME,MEMIT", "MEND")]
        assert prepare == (parts if lane == "0" else parts[::-1])
        lines = res.stdout.splitlines()
        grown = next(i for i, c in enumerate(lines) if f"run_dir={tmp_path}/en" in c
                     and int(re.search(r"data.limit=(\d+)", c).group(1)) > 30)
        assert max(lines.index(p) for p in prepare) < grown
        assert ("prepared.py" in res.stdout) == (lane == "0")
        # MEND: no row before the mend step; then on both sources, up to the series' sizes, after the move
        single = [c for c in calls[lane] if f"run_dir={tmp_path}/en" in c or f"run_dir={tmp_path}/zh_fr" in c]
        first_mend = next(i for i, c in enumerate(single) if "mend" in _methods(c))
        assert all(_methods(c) == ["mend"] for c in single[first_mend:])
        assert not any("mend" in _methods(c) for c in single[:first_mend])
        en1 = _dry(RESULTS / "protocol2" / "run.sh", "en", "1", PROTOCOL2_DIR=str(tmp_path))
        full = _methods(_calls(en1.stdout)[0])
        assert _methods(single[0]) == [m for m in full if m != "mend"] and "mend" in full  # WITHOUT keeps the order
        last = {d: max(int(re.search(r"data.limit=(\d+)", c).group(1)) for c in single[first_mend:] if f"/{d} " in c)
                for d in ("en", "zh_fr")}
        assert last == {"en": 59 + int(lane), "zh_fr": 29 + int(lane)}
        assert ("mend_rows.py en zh_fr" in res.stdout) == (lane == "0")
        if lane == "0":
            assert res.stdout.index("mend_rows.py") < res.stdout.index(single[first_mend])
    en = [c for c in calls["0"] if f"run_dir={tmp_path}/en" in c]
    assert [re.search(r"data.limit=(\d+)", c).group(1) for c in en][:15] == [str(n) for n in range(1, 31, 2)]
    # seq50 and LoRA's rows of seq10 and ppl1 run from seq50's pinned worktree (perplexity in eval mode); every
    # other step from the lanes' pinned checkout, which makes no LoRA row of seq10 or ppl1
    later = f"{tmp_path}/p2seq50:{tmp_path}/p2seq50/benchmarks/mkeb"
    for lane in ("0", "1"):
        for call in (c for c in calls[lane] if "code=" in c):  # the calls through issue31.sh
            code = call.split("code=")[1]
            redo = _methods(call) == ["lora"] and ("results/seq10 " in call or "results/ppl1 " in call)
            assert code == (later if "sequential.n=50" in call or redo else "/pinned"), call
            if code == "/pinned":
                assert "lora" not in _methods(call), call  # no pinned step makes a LoRA row of issue 31
    for seq in ("sequential.n=10", "sequential.n=50"):
        a, b = ([c for c in calls[lane] if seq in c] for lane in ("0", "1"))
        methods_a, methods_b = ({m for c in cs for m in _methods(c)} for cs in (a, b))
        assert not methods_a & methods_b
        assert not any("shard.count" in c for c in a) and all("shard.count" in c for c in b)  # two result files
        assert {"memla", "rome", "memit", "ft_m", "lora", "ike"} <= methods_a | methods_b
    # single edits with perplexity on the records of seq10's sequence, same methods, split by records
    seq10 = {m for lane in ("0", "1") for c in calls[lane] if "sequential.n=10" in c for m in _methods(c)}
    for lane in ("0", "1"):
        ppl = [c for c in calls[lane] if "/ppl1" in c]
        assert all("sequential.n" not in c and "perplexity.enabled=true" in c and "data.limit=10" in c for c in ppl)
        assert all(f"shard.index={lane}" in c for c in ppl) and {m for c in ppl for m in _methods(c)} == seq10
    # before LoRA's rows are made again, the lane moves the ones e14d649 made in its own files aside; a sitting
    # that may run fewer methods than the plan file it rewrites keeps a copy of that plan first
    for lane in ("0", "1"):
        out = dry_out[lane].splitlines()
        (move,) = [i for i, line in enumerate(out) if "move_rows.py" in line]
        files = out[move].split("lora_perplexity_dropout_on.jsonl ")[1].split()
        own = ["benchmarks/mkeb/results/ppl1/results.shard%sof2.jsonl" % lane]
        assert files == own + (["benchmarks/mkeb/results/seq10/sequences.jsonl"] if lane == "0" else [])
        assert "--method lora --made-with e14d649" in out[move]
        redo = [i for i, line in enumerate(out) if "memla_mkeb.app" in line and "methods=[lora]" in line
                and "sequential.n=50" not in line and "batch.size" not in line]
        assert len(redo) == (2 if lane == "0" else 1) and move < min(redo)
        sittings = [i for i, line in enumerate(out) if "memla_mkeb.app" in line and "results/ppl1 " in line
                    or (lane == "0" and "memla_mkeb.app" in line and "results/seq10 " in line)]
        for i in sittings:
            run_dir = re.search(r"run_dir=(\S+)", out[i]).group(1)
            assert out[i - 1].endswith(f"keep_plan.py {run_dir}"), out[i - 1]
    # MEMLA attributes a single edit or a batch's facts on the unedited model: ppl1, the de/ru/ja sources and
    # batch 32 read the published series' cache (batches 1 and 8, made before, attributed in their own dirs)
    for lane in ("0", "1"):
        for call in calls[lane]:
            shared = f"run.neuron_dir={tmp_path}/neurons" in call
            if "/ppl1" in call or "/de_ru_ja" in call or "batch.size=32" in call:
                assert shared, call
            elif "batch.size=" in call or "sequential.n=" in call:
                assert not shared, call  # a sequence attributes on the model its earlier edits left


def test_publish_writes_pages_with_this_checkouts_report_code(tmp_path):
    """protocol2/run.sh publish runs every report with PYTHONPATH at its own checkout, even when the shell points
    it at the pinned harness checkout the lanes use: the committed pages must be what this checkout's report
    code writes (the regenerate tests run that code)."""
    root = tmp_path / "checkout"
    script = root / "benchmarks/mkeb/results/protocol2/run.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(RESULTS / "protocol2" / "run.sh", script)
    (root / "docs").mkdir()
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\necho "PYTHONPATH=$PYTHONPATH $*"\n', encoding="utf-8")
    fake.chmod(0o755)
    res = _dry(script, "publish", MEMLA_PYTHON=str(fake), PYTHONPATH="/elsewhere/pinned")
    assert res.returncode == 0, res.stderr
    calls = [c for c in res.stdout.splitlines() if "memla_mkeb.report" in c]
    assert [c.split(" --out ")[1].split()[0] for c in calls] == [
        "docs/RESULTS_v1.md", "benchmarks/mkeb/results/protocol2/report_en30.md", "docs/RESULTS.md"]
    here = root.resolve()
    assert all(c.startswith(f"PYTHONPATH={here}:{here}/benchmarks/mkeb ") for c in calls), calls


def test_series_on_a_new_machine_keeps_the_finished_mend_rows(tmp_path):
    """Once MEND's rows of en (60) and zh/fr (30 x 2) are in and mend_checkpoint.json names their checkpoint,
    a sitting on a machine whose cache lacks that checkpoint neither trains another one nor runs mend_rows.py
    (which would move the published rows aside): it prepares the statistics only and makes no MEND row."""
    (tmp_path / "hparams" / "MEMLA").mkdir(parents=True)
    (tmp_path / "mend_checkpoint.json").write_text('{"checkpoints": {}}', encoding="utf-8")
    row = '{"method": "mend", "status": "ok"}\n'
    for run_dir, shards in (("en", (30, 30)), ("zh_fr", (30, 30))):
        (tmp_path / run_dir).mkdir()
        for i, n in enumerate(shards):
            (tmp_path / run_dir / f"results.shard{i}of2.jsonl").write_text(row * n, encoding="utf-8")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "memla-mkeb").write_text('#!/usr/bin/env bash\necho memla_mkeb.app "$@"\n', encoding="utf-8")
    (fake / "memla-mkeb").chmod(0o755)
    for lane in ("0", "1"):
        res = _dry(RESULTS / "protocol2" / "series.sh", LANE=lane, PROTOCOL2_DIR=str(tmp_path), MEMLA_BIN=str(fake),
                   SERIES_SYNC_DIR=str(tmp_path))  # no lane waits for the other: there is no mend step
        assert res.returncode == 0, res.stderr
        assert f"series lane {lane}: done" in res.stdout
        prepare = [line for line in res.stdout.splitlines() if "memla_plugin.easyedit.prepare" in line]
        assert prepare == [f"-m memla_plugin.easyedit.prepare --methods ROME,MEMIT --hparams-dir {tmp_path}/hparams"]
        assert "mend_rows.py" not in res.stdout and "mend: done" in res.stdout
        assert not any("mend" in _methods(c) for c in _calls(res.stdout))
    # one MEND row short: the mend step runs as before (lane 0 moves rows of another checkpoint aside first)
    (tmp_path / "zh_fr" / "results.shard1of2.jsonl").write_text(row * 29, encoding="utf-8")
    (tmp_path / "memla-series-mend.1").touch()
    res = _dry(RESULTS / "protocol2" / "series.sh", LANE="0", PROTOCOL2_DIR=str(tmp_path), MEMLA_BIN=str(fake),
               SERIES_SYNC_DIR=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "mend_rows.py en zh_fr" in res.stdout and "--methods MEND" in res.stdout
    assert any(_methods(c) == ["mend"] for c in _calls(res.stdout))


def test_series_keeps_sequence_state_in_the_machine_cache(tmp_path):
    """A sequence's saved state must outlive a new checkout: series.sh links RUN_DIR/.sequence_state of the
    sequence runs to a folder of the machine's cache, which a .keep file keeps from being removed; a second
    sitting leaves the link as it is; then it restores committed snapshots the cache lacks (seq_snapshot.py,
    tested in test_seq_snapshot.py) before any sequence runs; a dry run (MEMLA_PYTHON=echo) creates nothing."""
    root = tmp_path / "checkout"
    for rel in ("protocol2/series.sh", "protocol2/run.sh", "issue31.sh", "lanes.sh"):
        (root / "benchmarks/mkeb/results" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(RESULTS / rel, root / "benchmarks/mkeb/results" / rel)
    p2 = tmp_path / "p2"
    (p2 / "hparams" / "MEMLA").mkdir(parents=True)
    (p2 / "mend_checkpoint.json").write_text("{}", encoding="utf-8")
    for run_dir in ("en", "zh_fr"):  # MEND done: no lane waits for the other
        (p2 / run_dir).mkdir()
        (p2 / run_dir / "results.jsonl").write_text('{"method": "mend"}\n' * 60, encoding="utf-8")
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("memla-mkeb", "python"):
        (fake / name).write_text('#!/usr/bin/env bash\necho "$@"\n', encoding="utf-8")
        (fake / name).chmod(0o755)
    cache = tmp_path / "cache"
    env = dict(PROTOCOL2_DIR=str(p2), MEMLA_BIN=str(fake), MEMLA_CACHE=str(cache), SERIES_SYNC_DIR=str(tmp_path),
               SEQ50_TREE=str(tmp_path / "p2seq50"))
    script = root / "benchmarks/mkeb/results/protocol2/series.sh"
    # seq50's code is a worktree at its pinned commit: a lane without it stops at once, saying how to make it
    res = _dry(script, LANE="0", MEMLA_PYTHON=str(fake / "python"), **env)
    assert res.returncode == 2 and f"git worktree add {tmp_path}/p2seq50 4b808d1" in res.stderr
    assert "sequential.n=" not in res.stdout
    tree = tmp_path / "p2seq50"
    tree.mkdir()
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "pin"], check=True)
    head = subprocess.run(git[:3] + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    env["SEQ50_CODE"] = head[:7]
    res = _dry(script, LANE="0", **env)  # MEMLA_PYTHON=echo
    assert res.returncode == 0, res.stderr
    assert "keep_state benchmarks/mkeb/results/seq50 -> " in res.stdout
    assert not cache.exists() and not (root / "benchmarks/mkeb/results/seq50").exists()
    for sitting in (1, 2):
        res = _dry(script, LANE="0", MEMLA_PYTHON=str(fake / "python"), **env)
        assert res.returncode == 0, res.stderr
        for run in ("seq10", "seq50"):
            link = root / "benchmarks/mkeb/results" / run / ".sequence_state"
            assert link.is_symlink() and link.resolve() == (cache / "sequence_state" / run).resolve()
            assert (link / ".keep").is_file()
            restore = f"benchmarks/mkeb/results/seq_snapshot.py restore benchmarks/mkeb/results/{run}"
            assert restore in res.stdout
            assert res.stdout.index(restore) < res.stdout.index("sequential.n=")
    # a snapshot that cannot be put back does not stop the lane: its sequences start again, as without one
    failing = fake / "python_restore_fails"
    failing.write_text('#!/usr/bin/env bash\n[[ "$1" == *seq_snapshot.py ]] && exit 1\necho "$@"\n', encoding="utf-8")
    failing.chmod(0o755)
    res = _dry(script, LANE="0", MEMLA_PYTHON=str(failing), **env)
    assert res.returncode == 0, res.stderr
    assert "no snapshot of seq50 restored" in res.stdout and "series lane 0: done" in res.stdout
