"""Batch editing in the harness (batch.size): rows, batch of one, restore, resume, settings, host methods, report."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest_bench import assert_kept_apart, assert_refused_before_load, crash_then_resume, grouped_run, read_keyed
from conftest_bench import bench_env, bench_model_dir, compose, make_bench_env, read_rows  # noqa: F401
from memla_mkeb import store
from memla_mkeb.runner import run_benchmark


def read_batches(run_dir: Path) -> dict[str, dict]:
    return read_keyed(run_dir, store.BATCHES_GLOB)


BATCH = ("data.limit=4", "batch.size=2")


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, bench_model_dir):
    return grouped_run(tmp_path_factory.mktemp("bench_batch"), bench_model_dir, BATCH, read_batches)


def test_batch_rows(batch_run):
    env, summary, rows = batch_run
    assert set(rows) == {"batch2|memla|en|100", "batch2|memla|en|102"}
    row = rows["batch2|memla|en|100"]
    assert row["record_ids"] == ["100", "101"] and row["n"] == 2 and row["status"] == "ok"
    assert row["statuses"] == ["ok", "ok"] and row["counts"] == {"ok": 2, "error": 0, "skipped": 0}
    assert len(row["scores"]) == 2 and all(set(sc) == {"en", "zh", "fr"} for sc in row["scores"])
    assert row["applied"] == "one call" and row["edit_s_per_fact"] == pytest.approx(row["edit_s"] / 2)
    stats = row["edit_stats"]  # one joint MEMLA edit of both facts
    assert stats["n_requests"] == 2 and [r["case_id"] for r in stats["per_request"]] == [100, 101]
    assert "loss_trace" not in stats and all("loss_trace" not in r for r in stats["per_request"])
    assert row["restore"]["checked"] > 0 and row["restore"]["restored"] > 0
    assert {r["key"] for r in read_rows(env.run_dir)} == {f"unedited|en|{i}" for i in (100, 101, 102, 103)}
    assert summary.written == 6 and summary.restore_checks == 2
    assert (env.run_dir / "neurons").is_dir()  # a joint edit attributes on the unedited model: the cache is shared
    assert env.run_dir.name == "run" and not list(env.run_dir.glob("sequences*.jsonl"))


def test_batch_of_one_scores_as_the_single_edit(tmp_path, bench_model_dir):
    """batch.size=1: MEMLA's joint edit of one fact is the single edit, so the scores are the single rows'."""
    single, batched = make_bench_env(tmp_path / "s", bench_model_dir), make_bench_env(tmp_path / "b", bench_model_dir)
    run_benchmark(compose(single.overrides("data.limit=2")))
    run_benchmark(compose(batched.overrides("data.limit=2", "batch.size=1")))
    singles = {r["key"]: r for r in read_rows(single.run_dir)}
    got = read_batches(batched.run_dir)
    assert set(got) == {"batch1|memla|en|100", "batch1|memla|en|101"}
    for rid in ("100", "101"):
        assert got[f"batch1|memla|en|{rid}"]["scores"] == [singles[f"memla|en|{rid}"]["scores"]], rid


def test_interrupted_batch_is_redone_whole(batch_run, tmp_path, bench_model_dir):
    _, _, ref = batch_run
    left, summary, got = crash_then_resume(tmp_path, bench_model_dir, BATCH, read_batches)
    assert left == {"batch2|memla|en|100"} and summary.written == 1 and summary.already_done == 5
    assert set(got) == set(ref) and all(got[k]["scores"] == ref[k]["scores"] for k in ref)


def test_a_failed_batch_is_scored_unedited_and_restored(bench_env, monkeypatch):
    import memla_plugin.memla_main as mm

    real = mm._find_neurons
    monkeypatch.setattr(mm, "_find_neurons", lambda m, t, prompts, target, a, h: set()
                        if "Germany" in prompts[0] or "德国" in prompts[0] or "Allemagne" in prompts[0]
                        else real(m, t, prompts, target, a, h))
    summary = run_benchmark(compose(bench_env.overrides("data.limit=2", "batch.size=2")))
    row = read_batches(bench_env.run_dir)["batch2|memla|en|100"]
    assert row["status"] == "error" and row["error"]["type"] == "NoNeuronsError"
    assert row["statuses"] == ["error", "error"] and summary.errors == 2
    unedited = {r["record_id"]: r["scores"] for r in read_rows(bench_env.run_dir)}
    assert row["scores"] == [unedited["100"], unedited["101"]]
    assert row["restore"]["checked"] > 0


@pytest.mark.parametrize("setting, message", [
    ("batch.size=3", r"batch.size=3 must divide the 4 selected record\(s\) into whole batches; set data.limit"),
    ("batch.size=0", r"batch.size=0 must be at least 1"),
    ("batch.size=two", r"batch.size='two': give an integer \(facts per batch edit\) or null"),
    ("+batch.n=2", r"batch.n is not a setting; batch has size"),
    ("batch.size=2 sequential.n=2", r"batch.size=2 and sequential.n=2 are separate runs; set one of them"),
    ("batch.size=2 methods=[unedited,ike]", r"batch.size: ike edits in context"),
    ("batch.size=2 +catalog.memla_loc={kind:memla,overrides:{locality_weight:0.5,background_dir:bg}} "
     "methods=[memla_loc]", r"catalog.memla_loc: batch_mode=joint has no locality term"),
])
def test_bad_batch_settings_fail_before_the_model_loads(bench_env, capsys, setting, message):
    assert_refused_before_load(bench_env, capsys, setting, message)


def test_batch_rows_never_mix_with_single_edit_rows(batch_run):
    env, _, rows = batch_run
    assert_kept_apart(env, rows, "batch2|")


def test_shards_split_whole_batches(bench_env):
    from memla_mkeb.planning import plan_run

    plans = [plan_run(compose(bench_env.overrides(*BATCH, "shard.count=2", f"shard.index={i}"))) for i in (0, 1)]
    assert [[[str(r.example_id) for r in b] for b in p.batches] for p in plans] == [[["100", "101"]], [["102", "103"]]]
    assert [len(p.batch_keys()) for p in plans] == [1, 1] and not plans[0].sequences


def _host_hparams(env) -> None:
    """ROME and MEMIT hparams for the tiny model (statistics from the local corpus)."""
    import yaml

    repo = Path(__file__).resolve().parents[1] / "hparams"
    model = str(env.model_dir)
    common = dict(model_name=model, v_loss_layer=2, mom2_n_samples=24, stats_dir=str(env.root / "stats"),
                  context_template_length_params=[[5, 5]])
    for alg, changes in (("ROME", dict(layers=[1])), ("MEMIT", dict(layers=[0, 1], mom2_update_weight=1))):
        cfg = yaml.safe_load((repo / alg / "qwen2.5-0.5b.yaml").read_text())
        cfg.update(common, **changes)
        cfg = {k: v for k, v in cfg.items() if k != "context_template_length_params" or alg == "ROME"}
        (env.hparams_dir / alg).mkdir(exist_ok=True)
        (env.hparams_dir / alg / "tiny.yaml").write_text(yaml.safe_dump(cfg))


def test_memit_batches_in_one_call_and_rome_one_by_one(bench_env, monkeypatch):
    import memla_plugin.easyedit as ee

    _host_hparams(bench_env)
    calls: list[tuple[str, int]] = []
    real = ee.get_apply_fn

    def counting(alg):
        fn = real(alg)

        def apply(model, tok, requests, hparams, **kw):
            calls.append((alg, len(requests)))
            return fn(model, tok, requests, hparams, **kw)

        return apply

    monkeypatch.setattr(ee, "get_apply_fn", counting)
    summary = run_benchmark(compose(bench_env.overrides("data.limit=2", "batch.size=2",
                                                        "methods=[unedited,memit,rome]")))
    assert summary.errors == 0 and summary.restore_checks == 2
    rows = read_batches(bench_env.run_dir)
    assert rows["batch2|memit|en|100"]["applied"] == "one call" and rows["batch2|rome|en|100"]["applied"] == "one by one"
    assert calls == [("MEMIT", 2), ("ROME", 1), ("ROME", 1)]
    for row in rows.values():
        assert row["counts"] == {"ok": 2, "error": 0, "skipped": 0} and row["restore"]["checked"] > 0
        assert len(row["scores"]) == 2 and all(row["scores"])


def test_report_gains_the_batch_size_table(batch_run, tmp_path):
    from memla_mkeb.report import write_report

    env, _, rows = batch_run
    md = write_report([env.run_dir], tmp_path / "rep.md", n_boot=20, plots=False).read_text(encoding="utf-8")
    assert "## Batch editing" in md
    table = [line for line in md.splitlines() if line.startswith("| memla | 2 |")]
    assert len(table) == 1 and "| 2 | 4/0/0 |" in table[0]
    # the edit time per fact, and the share of it MEMLA spent attributing the facts (no cache held them)
    edit = sum(r["edit_s"] for r in rows.values()) / 4
    cpu = sum(r["edit_cpu_s"] for r in rows.values()) / 4
    attribution = sum(r["edit_stats"]["attribution_s"] for r in rows.values()) / 4
    threads = {r["hardware"].split("cores, ")[1].split(" torch")[0] for r in rows.values()}
    assert 0 < attribution < edit and len(threads) == 1 and cpu > 0
    assert table[0].endswith(f"| {edit:.2f} | {cpu:.2f} | {attribution:.2f} | {threads.pop()} | 2 |")
    csv = (tmp_path / "rep_files" / "batch.csv").read_text().splitlines()
    assert csv[0].startswith("method,batch_size,source,batches,facts_ok") and len(csv) == 2
    assert "Sequential retention" not in md
    # the runs table names the batches and their hardware, which the single-edit rows (unedited) need not share
    (hw,) = {r["hardware"] for r in rows.values()}
    assert f"| `{env.run_dir}` | batches of 2 | memla | en | 2 | 4 | {hw} |" in md
    assert hw in md.split("- Hardware: ", 1)[1].splitlines()[0]


def test_report_plots_scores_against_the_batch_size(batch_run, tmp_path):
    from memla_mkeb.report import write_report

    env, _, _ = batch_run
    md = write_report([env.run_dir], tmp_path / "rep.md", n_boot=20).read_text(encoding="utf-8")
    assert "(rep_files/batch_en.png)" in md
    png = (tmp_path / "rep_files" / "batch_en.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_report_findings_compare_memla_with_memit_per_fact(bench_env, tmp_path):
    """The Findings' batch paragraph: MEMLA minus MEMIT on the same facts at each batch size, and MEMLA's
    largest batch minus its batch of one, each a mean over facts computed here by hand from the rows."""
    from memla_mkeb.report import write_report
    from memla_mkeb.seq_sections import view_value

    _host_hparams(bench_env)
    dirs = {size: bench_env.root / f"batch{size}" for size in (1, 2)}
    for size, run_dir in dirs.items():
        summary = run_benchmark(compose(bench_env.overrides("data.limit=2", f"batch.size={size}",
                                                            "methods=[unedited,memla,memit]", run_dir=run_dir)))
        assert summary.errors == 0

    def facts(size, method, metric, view="others"):
        out = {}
        for row in read_batches(dirs[size]).values():
            if row["method"] == method:
                out.update({rid: view_value(sc, "en", metric, view)
                            for rid, sc in zip(row["record_ids"], row["scores"])})
        return out

    def mean_diff(a, b):  # as the report prints it: one decimal, signed, no -0.0
        from memla_mkeb.stats import pct

        return pct(sum(a[k] - b[k] for k in a) / len(a), signed=True)

    md = write_report(list(dirs.values()), tmp_path / "rep.md", n_boot=20, plots=False).read_text(encoding="utf-8")
    words = md.split("## Findings")[1].split("\n## ")[0]
    (para,) = [p for p in words.split("\n\n") if p.startswith("**Batch editing, edited in en**")]
    for size in (1, 2):
        home = mean_diff(facts(size, "memla", "ES", "e2e"), facts(size, "memit", "ES", "e2e"))
        es = mean_diff(facts(size, "memla", "ES"), facts(size, "memit", "ES"))
        sentence = para.split(f"Batch size {size}, `memla` minus `memit`: ")[1].split("Batch size")[0]
        assert sentence.startswith(f"in the edit language ES {home} [")
        assert f"; in the other languages: ES {es} [" in sentence
    ns = mean_diff(facts(2, "memla", "NS_cf"), facts(1, "memla", "NS_cf"))
    home = mean_diff(facts(2, "memla", "ES", "e2e"), facts(1, "memla", "ES", "e2e"))
    assert f"`memla` in batches of 2 minus one fact at a time: in the edit language ES {home} [" in para
    assert f"NS_cf {ns} [" in para.split("one fact at a time")[1]
    assert "there are no single edits of `memla` (its batches are compared under \"Batch editing\")" in md
