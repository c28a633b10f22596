"""The memla-mkeb runner on a tiny saved Qwen2: resume, kill -9, shards, restore checks, zsRE.

A reference run (unedited + MEMLA, 3 records, source en, evaluated in en/zh/fr) is made once
per module; interrupted, killed and sharded runs must end with exactly its keys and scores.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest_bench import (  # noqa: F401
    bench_env, bench_model_dir, compose, fake_apply, make_bench_env, mkeb_record, read_rows, write_host_hparams,
)
from memla_mkeb import costs
from memla_mkeb.app import run_task
from memla_mkeb.report import write_report
from memla_mkeb.runner import Hooks, run_benchmark
from memla_plugin.errors import NoNeuronsError, RestoreMismatchError

LIMIT = ("data.limit=3",)
KEYS = {f"{m}|en|{r}" for m in ("unedited", "memla") for r in (100, 101, 102)}


def _by_key(rows):
    return {r["key"]: r for r in rows}


def _cli(env, *args: str, timeout: float = 300) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "memla_mkeb.app", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, bench_model_dir):
    env = make_bench_env(tmp_path_factory.mktemp("bench_ref"), bench_model_dir)
    summary = run_benchmark(compose(env.overrides(*LIMIT)))
    rows = read_rows(env.run_dir)
    assert {r["key"] for r in rows} == KEYS and summary.written == 6
    assert summary.restore_checks == 3 and all(r["restore"]["checked"] > 0 for r in rows if r["method"] == "memla")
    return env, _by_key(rows)


def test_each_method_set_keeps_its_plan(reference, tmp_path):
    """A later sitting with fewer methods rewrites plan.json; the plan of the earlier method set stays beside
    it under that set's name (the report checks every method's rows against the settings in plan*.json)."""
    import shutil

    from memla_mkeb.planning import method_set_plan_name

    env, _ = reference
    run_dir = tmp_path / "run"
    shutil.copytree(env.run_dir, run_dir)
    both = run_dir / method_set_plan_name("plan.json", ["unedited", "memla"])
    assert both.read_bytes() == (run_dir / "plan.json").read_bytes()
    run_benchmark(compose(env.overrides("data.limit=4", "methods=[unedited]", run_dir=run_dir)))  # record 103
    live = json.loads((run_dir / "plan.json").read_text())
    assert set(live["method_ids"]) == {"unedited"}
    assert set(json.loads(both.read_text())["method_ids"]) == {"unedited", "memla"}
    only = run_dir / method_set_plan_name("plan.json", ["unedited"])
    assert only.read_bytes() == (run_dir / "plan.json").read_bytes()
    assert sorted(p.name for p in run_dir.glob("plan*.json")) == sorted(["plan.json", both.name, only.name])


def _same_scores(rows, ref):
    got = _by_key(rows)
    assert set(got) == set(ref)
    for key, row in got.items():
        assert row["status"] == ref[key]["status"], key
        assert row["scores"] == ref[key]["scores"], key


def test_run_dir_contents(reference):
    env, ref = reference
    names = {p.name for p in env.run_dir.iterdir()}
    assert {"results.jsonl", "unedited_cache.jsonl", "config.yaml", "env.json", "plan.json", "sittings.jsonl"} <= names
    envinfo = json.loads((env.run_dir / "env.json").read_text())
    assert envinfo["seed"] == 42 and envinfo["torch_threads"] >= 1 and envinfo["packages"]["torch"]
    assert "methods:" in (env.run_dir / "config.yaml").read_text()
    row = ref["memla|en|101"]
    assert set(row["scores"]) == {"en", "zh", "fr"} and row["edit_s"] > 0 and row["eval_s"] > 0
    assert row["edit_cpu_s"] > 0 and row["eval_cpu_s"] > 0
    if sys.platform.startswith("linux"):  # each row's own peak, never above the process peak so far
        assert all(0 < r["row_start_rss_mib"] <= r["row_peak_rss_mib"] <= r["peak_rss_mib"] for r in ref.values())
    assert "attribution_s" in row["edit_stats"] and "train_s" in row["edit_stats"]
    # unedited rows reuse the cached unedited scores; one cache line per record
    assert ref["unedited|en|100"]["scores"]["en"]["loc_acc"] == 1.0
    cache = [json.loads(x) for x in (env.run_dir / "unedited_cache.jsonl").read_text().splitlines()]
    assert sorted(c["record_id"] for c in cache) == ["100", "101", "102"]
    # a second start has nothing to do and writes nothing
    again = run_benchmark(compose(env.overrides(*LIMIT)))
    assert again.written == 0 and again.already_done == 6


def test_resume_after_injected_crash(reference, tmp_path, bench_model_dir):
    _, ref = reference
    env = make_bench_env(tmp_path, bench_model_dir)
    seen = []

    def crash(row):
        seen.append(row["key"])
        if len(seen) == 4:  # after unedited x3 and the first MEMLA edit
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError, match="injected crash"):
        run_benchmark(compose(env.overrides(*LIMIT)), hooks=Hooks(after_row=crash))
    assert len(read_rows(env.run_dir)) == 4
    # a kill -9 in the middle of a write leaves a partial line behind
    with open(env.run_dir / "results.jsonl", "a") as fh:
        fh.write('{"key": "memla|en|101", "method": "memla", "sco')
    summary = run_benchmark(compose(env.overrides(*LIMIT)))
    assert summary.already_done == 4 and summary.written == 2
    rows = read_rows(env.run_dir)
    assert Counter(r["key"] for r in rows) == Counter(KEYS)  # nothing lost, nothing twice
    _same_scores(rows, ref)
    assert (env.run_dir / "results.jsonl").read_text().endswith("}\n")


def test_resume_after_kill_9(reference, tmp_path, bench_model_dir):
    _, ref = reference
    env = make_bench_env(tmp_path, bench_model_dir)
    results = env.run_dir / "results.jsonl"
    proc = _cli(env, *env.overrides(*LIMIT))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if results.is_file() and results.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1][-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    partial = read_rows(env.run_dir)
    assert 4 <= len(partial) < 6
    proc = _cli(env, *env.overrides(*LIMIT))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    rows = read_rows(env.run_dir)
    assert Counter(r["key"] for r in rows) == Counter(KEYS)
    _same_scores(rows, ref)
    assert len((env.run_dir / "sittings.jsonl").read_text().splitlines()) == 2


def test_hydra_multirun_shards_merge_to_the_same_tables(reference, tmp_path, bench_model_dir):
    ref_env, ref = reference
    env = make_bench_env(tmp_path, bench_model_dir)
    proc = _cli(env, "-m", "shard.count=2", "shard.index=0,1", "shard.mode=strided", *env.overrides(*LIMIT))
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    files = sorted(p.name for p in env.run_dir.glob("results*.jsonl"))
    assert files == ["results.shard0of2.jsonl", "results.shard1of2.jsonl"]
    shard0 = {r["record_id"] for r in read_rows(env.run_dir) if r["shard"] == "0/2"}
    assert shard0 == {"100", "102"}  # strided: records 0 and 2 of the 3
    _same_scores(read_rows(env.run_dir), ref)
    write_report([ref_env.run_dir], out=tmp_path / "one" / "report.md", n_boot=200, plots=False)
    write_report([env.run_dir], out=tmp_path / "sharded" / "report.md", n_boot=200, plots=False)
    for name in ("summary.csv", "matrix.csv", "counts.csv"):
        one = (tmp_path / "one" / "report_files" / name).read_bytes()
        assert one == (tmp_path / "sharded" / "report_files" / name).read_bytes(), name


# --------------------------------------------------------------------------- restore checks


def test_restore_mismatch_stops_the_run_naming_the_record(bench_env, monkeypatch, capsys):
    import memla_plugin.memla_main as mm

    monkeypatch.setattr(mm, "apply_memla_to_model", fake_apply(corrupt_case="101"))
    cfg = compose(bench_env.overrides(*LIMIT, "methods=[memla]"))
    with pytest.raises(RestoreMismatchError, match=r"record 101 \(method memla, source en\).*down_proj"):
        run_benchmark(cfg)
    rows = read_rows(bench_env.run_dir)
    assert [r["key"] for r in rows] == ["memla|en|100"]  # the record before it is kept
    failures = (bench_env.run_dir / "restore_failures.jsonl").read_text().splitlines()
    assert len(failures) == 1 and json.loads(failures[0])["key"] == "memla|en|101"
    # through the app: one line, exit status 2, and the record id
    capsys.readouterr()
    assert run_task(cfg) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("memla-mkeb: error: record 101 (method memla, source en)")


def test_failed_edit_is_recorded_and_must_leave_the_model_unchanged(bench_env, monkeypatch):
    import memla_plugin.memla_main as mm

    def refuse(model, tok, requests, hparams, **kw):
        raise NoNeuronsError(f"case {requests[0]['case_id']}: nothing to edit")

    monkeypatch.setattr(mm, "apply_memla_to_model", refuse)
    run_benchmark(compose(bench_env.overrides("data.limit=2", "methods=[unedited,memla]")))
    rows = _by_key(read_rows(bench_env.run_dir))
    failed = rows["memla|en|100"]
    assert failed["status"] == "error" and failed["error"]["type"] == "NoNeuronsError"
    assert failed["scores"] == rows["unedited|en|100"]["scores"]  # scored on the unchanged model
    assert failed["restore"]["checked"] > 0
    # an editor that fails *after* changing weights is caught by the restore check
    monkeypatch.setattr(mm, "apply_memla_to_model", fake_apply(fail_case="102"))
    with pytest.raises(RestoreMismatchError, match="record 102"):
        run_benchmark(compose(bench_env.overrides("data.limit=3", "methods=[memla]",
                                                  f"run_dir={bench_env.root / 'run2'}")))


# --------------------------------------------------------------------------- data layouts


def _bmike_zsre_dir(root: Path, n: int) -> Path:
    """A BMIKE-53 zsRE-style split (no `old` answers), one file per language."""
    src = root / "bmike_zsre"
    src.mkdir()
    recs = [mkeb_record(i) for i in range(n)]
    for lang in ("en", "zh", "fr"):
        items = []
        for r in recs:
            part = {}
            for lg in ("en", lang):
                e = r["edit"][lg]
                part[lg] = {
                    "case_id": r["example_id"], "subject": e["subject"], "src": e["prompt"].replace("{}", e["subject"]),
                    "rephrase": r["paraphrase_prompts"][lg][0], "alt": e["target_new"],
                    "loc": r["neighborhood_prompts"][lg][0], "loc_ans": r["neighborhood_answers"][lg][0],
                    "port": r["multi_hop_questions"][lg][0], "port_ans": r["multi_hop_new_answer"][lg],
                }
            items.append(part)
        (src / f"zsre_test_{lang}.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return src


def test_zsre_layout_runs_and_report_names_skipped_metrics(bench_env, tmp_path):
    from memla_plugin.mkeb.convert import main as convert

    data = tmp_path / "zsre_mkeb.json"
    assert convert(["bmike53", "--src", str(_bmike_zsre_dir(tmp_path, 2)), "--out", str(data)]) == 0
    assert "target_true" not in json.dumps(json.loads(data.read_text())[0]["edit"]["en"]).replace('"target_true": null', "")
    run_benchmark(compose(bench_env.overrides(f"data.path={data}", "methods=[unedited,memla]")))
    rows = _by_key(read_rows(bench_env.run_dir))
    assert set(rows) == {f"{m}|en|{r}" for m in ("unedited", "memla") for r in (100, 101)}
    assert rows["unedited|en|100"]["scores"]["en"]["ES"] is None and rows["unedited|en|100"]["scores"]["en"]["NS"] is not None
    # MEMLA attributes on target_true; without it the edit fails and is counted as such
    assert rows["memla|en|100"]["status"] == "error"
    md = write_report([bench_env.run_dir], n_boot=100).read_text(encoding="utf-8")
    assert "## Metrics the data does not support" in md
    assert "- **ES** skipped: no value in any row; source split has no original answer (`old`)" in md
    assert "- **PS** skipped" in md
    assert "| ES edit→edit" not in md and "| NS edit→edit | NS others |" in md


def test_methods_needing_the_subject_skip_untemplatable_records(bench_env, tmp_path):
    from conftest_bench import write_mkeb

    data = write_mkeb(tmp_path / "noslot.json", 2, untemplatable=("en",))
    run_benchmark(compose(bench_env.overrides(
        f"data.path={data}", "+catalog.needs_subject={kind:memla,alg_name:MEMLA,needs_subject_slot:true}",
        "methods=[needs_subject]")))
    rows = read_rows(bench_env.run_dir)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert rows[0]["error"]["type"] == "NoSubjectSlot" and rows[0]["scores"] is None
    md = write_report([bench_env.run_dir], n_boot=50, plots=False).read_text(encoding="utf-8")
    assert "| needs_subject | en | 2 | 0 | 0 | 2 | 0 | – |" in md


# --------------------------------------------------------------------------- host baselines


def test_easyedit_baselines_run_through_the_same_path(bench_env):
    """ROME, FT-M and LoRA (a PEFT wrapper that is unloaded, not copied back) on the tiny model."""
    write_host_hparams(bench_env)
    summary = run_benchmark(compose(bench_env.overrides("data.limit=2", "methods=[unedited,rome,ft_m,lora]")))
    assert summary.written == 8 and summary.restore_checks == 6 and summary.errors == 0
    rows = _by_key(read_rows(bench_env.run_dir))
    assert rows["lora|en|101"]["kind"] == "easyedit" and rows["lora|en|101"]["restore"]["restored"] == 1
    assert rows["rome|en|100"]["edit_s"] > 0 and set(rows["ft_m|en|100"]["scores"]) == {"en", "zh", "fr"}
    assert "Executing" in (bench_env.run_dir / "host_output.log").read_text()  # host prints kept off the bars
    from memla_mkeb.runner import _MODEL_CACHE

    (edited_model, _, _), = _MODEL_CACHE.values()
    assert not edited_model.is_gradient_checkpointing and edited_model.config.use_cache is True
    # ROME switched requires_grad off everywhere; MEND after it would have nothing to differentiate
    assert all(p.requires_grad for p in edited_model.parameters())
    assert not hasattr(edited_model, "peft_config") and not edited_model.training


def test_model_object_injection(bench_env, qwen2_model, tiny_tok):
    """Notebooks/tests can hand the runner a loaded model instead of model.name_or_path."""
    cfg = compose(bench_env.overrides("data.limit=1", "methods=[unedited]", "model.name_or_path=not-loaded"))
    summary = run_benchmark(cfg, model=qwen2_model, tok=tiny_tok)
    assert summary.written == 1 and read_rows(bench_env.run_dir)[0]["scores"]["en"]["loc_acc"] == 1.0


def test_resume_refuses_rows_made_with_other_settings(bench_env):
    run_benchmark(compose(bench_env.overrides("data.limit=1", "methods=[unedited]")))
    with pytest.raises(Exception, match=r"already has rows for method 'unedited' made with other settings "
                                         r"\(seed: 42 -> 7\); use a new run_dir"):
        run_benchmark(compose(bench_env.overrides("data.limit=1", "methods=[unedited]", "seed=7")))


def test_memla_variants_share_one_attribution_per_record_and_language(bench_env, tmp_path):
    """run.share_neurons: the second MEMLA variant reads the first one's neurons (cache hits), and
    its edit equals what it computes with sharing off."""
    shared = tmp_path / "shared_neurons"
    run_benchmark(compose(bench_env.overrides(
        "data.limit=2", "methods=[memla,memla_scale1p0]", f"run.neuron_dir={shared}")))
    rows = {(r["method"], r["record_id"]): r for r in read_rows(bench_env.run_dir)}
    for (method, rid), row in rows.items():
        assert row["status"] == "ok", row["error"]
        hits = row["edit_stats"]["cache_hits"]
        langs = len(row["edit_stats"]["neurons_per_lang"])
        assert hits == (0 if method == "memla" else langs), (method, rid, hits)
    assert any(shared.rglob("*.json"))
    # the report puts the variant's cached attributions back, timed by the memla rows that computed them
    variant = [r for (m, _), r in rows.items() if m == "memla_scale1p0"]
    ca = costs.with_cached_attribution(variant, costs.attribution_index(rows.values()))
    assert ca.complete and ca.cached == sum(len(r["edit_stats"]["neurons_per_lang"]) for r in variant) > 0
    assert ca.mean_edit_s > sum(r["edit_s"] for r in variant) / len(variant)
    alone = tmp_path / "alone"
    run_benchmark(compose(bench_env.overrides(
        "data.limit=2", "methods=[memla_scale1p0]", "run.share_neurons=false", run_dir=alone)))
    for row in read_rows(alone):
        assert row["edit_stats"]["cache_hits"] == 0
        assert row["scores"] == rows[("memla_scale1p0", row["record_id"])]["scores"]
        assert row["edit_stats"]["neurons_per_lang"] == rows[("memla_scale1p0", row["record_id"])]["edit_stats"]["neurons_per_lang"]


def test_sitting_done_answers_as_the_harness_would(reference, capsys, results_script):
    """benchmarks/mkeb/results/sitting_done.py (what lanes.sh asks before each sitting) says "nothing to do"
    for a finished sitting only: a sitting with rows left is counted, and one the run dir would refuse is
    left to the harness (which names the refusal)."""
    sitting_done = results_script("sitting_done.py")
    env, _ = reference
    assert sitting_done.main(env.overrides(*LIMIT)) == 0
    assert capsys.readouterr().out.strip() == "nothing to do"
    assert sitting_done.main(env.overrides("data.limit=4")) == 0  # record 103, unedited and memla
    assert capsys.readouterr().out.strip() == "2 to do"
    assert sitting_done.main(env.overrides(*LIMIT, "seed=7")) == 1
    out = capsys.readouterr()
    assert out.out == "" and "the sitting runs" in out.err
    assert {r["key"] for r in read_rows(env.run_dir)} == KEYS  # it only read the run dir
