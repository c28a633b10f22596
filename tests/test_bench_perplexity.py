"""Held-out perplexity in the harness (perplexity.*): before/after per row and per sequence, overlap refused."""
from __future__ import annotations

import json

import pytest

from conftest_bench import bench_env, bench_model_dir, compose, read_rows  # noqa: F401
from memla_mkeb import store
from memla_mkeb.collect import collect, single_edit_ids
from memla_mkeb.runner import run_benchmark


def _ppl(env, *more):
    return env.overrides("perplexity.enabled=true", f"perplexity.path={env.data}", "perplexity.ids=null",
                         "perplexity.last=2", *more)


def test_rows_carry_perplexity_before_and_after(bench_env):
    run_benchmark(compose(_ppl(bench_env, "data.limit=2")))
    rows = {r["key"]: r for r in read_rows(bench_env.run_dir)}
    before = rows["unedited|en|100"]["perplexity"]["before"]
    assert len(before["langs"]) == 12 and before["langs"]["en"]["texts"] == 2  # records 102 and 103
    assert before["mean_ppl"] > 1 and rows["unedited|en|100"]["perplexity"]["after"] == before
    edited = rows["memla|en|100"]["perplexity"]
    assert edited["before"] == before and edited["after"]["mean_ppl"] != before["mean_ppl"]
    assert set(edited["after"]["langs"]) == set(before["langs"])
    print(f"perplexity probe on the tiny model: {edited['after']['s']:.3f} s for 24 texts")


def test_sequences_carry_perplexity_after_all_edits(bench_env):
    run_benchmark(compose(_ppl(bench_env, "data.limit=2", "sequential.n=2")))
    (row,) = [r for p in store.iter_files(bench_env.run_dir, store.SEQUENCES_GLOB) for r in store.read_jsonl(p)]
    assert row["perplexity"]["after"]["mean_ppl"] != row["perplexity"]["before"]["mean_ppl"]


def test_evaluated_records_cannot_be_held_out(bench_env, capsys):
    from memla_mkeb.app import run_task

    assert run_task(compose(_ppl(bench_env, "data.limit=3", "model.name_or_path=/nonexistent"))) == 2
    err = capsys.readouterr().err
    assert "perplexity: 1 evaluated record(s) (e.g. 102) are also among the held-out perplexity texts" in err
    assert not bench_env.run_dir.exists()


def test_shipped_default_holds_out_the_last_100_test_records():
    from memla_mkeb.planning import perplexity_records
    from memla_plugin.mkeb.loader import read_test_ids, resolve_data_path, shipped_data_dir

    cfg = compose(["data=test", "perplexity.enabled=true"])
    test_ids = read_test_ids(shipped_data_dir() / "test_ids.txt")
    held, identity = perplexity_records(cfg, resolve_data_path(None), [])
    assert list(held.ids) == test_ids[-100:] and "perplexity" in identity
    with pytest.raises(Exception, match=r"perplexity: 1 evaluated record"):
        run_benchmark(compose(["data=test", f"data.limit={len(test_ids) - 99}", "perplexity.enabled=true",
                               "methods=[unedited]", "model.name_or_path=/nonexistent"]))


def test_one_report_of_single_edits_and_sequences(bench_env, tmp_path):
    """The unedited rows of a sequence run and a single-edit run are one setting, so one report takes both
    and its perplexity table has a line per setting (issue31.sh report: seq10, seq50 and the single edits)."""
    from memla_mkeb.report import write_report

    single, seq = tmp_path / "single", tmp_path / "seq2"
    # single edits of record 100; the sequence also edits 101, whose unedited row only it holds
    run_benchmark(compose(_ppl(bench_env, "data.limit=1", f"run_dir={single}")))
    run_benchmark(compose(_ppl(bench_env, "data.limit=2", "sequential.n=2", f"run_dir={seq}")))
    plan = json.loads((single / "plan.json").read_text())
    # no grouping setting: the id is the planner's own
    assert single_edit_ids([plan]) == {v: v for v in plan["method_ids"].values()}
    seq_plan = json.loads((seq / "plan.json").read_text())
    assert seq_plan["method_ids"]["unedited"] != plan["method_ids"]["unedited"]
    c = collect([single, seq])
    assert c.duplicates == 1
    assert {k for k in c.rows if k.startswith("unedited")} == {"unedited|en|100", "unedited|en|101"}
    md = write_report([single, seq], tmp_path / "r.md", n_boot=20, plots=False).read_text(encoding="utf-8")
    section = md[md.index("## Held-out perplexity"):]
    assert "| memla | en | single edits | 1 |" in section and "| memla | en | sequences of 2 | 1 |" in section


def _ppl_field(before: float, after: float) -> dict:
    langs = {"en": {"nll": 1.0, "ppl": before, "texts": 1, "tokens": 1}}
    return {"before": {"langs": langs, "mean_ppl": before},
            "after": {"langs": {"en": dict(langs["en"], ppl=after)}, "mean_ppl": after}}


@pytest.mark.parametrize("befores, spread", [((200.0, 200.0), None), ((200.0, 200.01), "0.0050% apart")])
def test_perplexity_section_names_the_spread_of_the_unedited_value(befores, spread):
    """Two sittings' unedited perplexities: the section says how far apart they are, and only when they differ."""
    from types import SimpleNamespace

    from memla_mkeb.seq_sections import perplexity

    rows = [{"method": "memla", "source": "en", "perplexity": _ppl_field(b, b * 1.1)} for b in befores]
    d = SimpleNamespace(rows=rows, c=SimpleNamespace(sequences={}), kinds={"memla": "memla"}, targets=["en"],
                        files_dir="r_files")
    files: dict = {}
    text = "\n".join(perplexity(d, files))
    assert f"| memla | en | single edits | 2 | {sum(befores) / 2:.2f} |" in text  # the mean of the two sittings
    assert "| +10.0 |" in text and "r_files/perplexity.csv" in files
    if spread is None:
        assert "apart" not in text
    else:
        assert f"ranges from {befores[0]:.4f} to {befores[1]:.4f} ({spread})" in text
