"""memla-mkeb-report on a tiny fixed results file: hand-checked numbers, determinism, merging.

tests/data/bench_report/run/results.jsonl holds 3 records x 4 methods, source en, evaluated
in en/zh/fr (it ends with a partial line, as a killed writer leaves it). ES values per record
(en, zh, fr):

    unedited  r1 (0,0,0)  r2 (0,0,1)  r3 (1,0,0)
    memla     r1 (1,1,0)  r2 (1,0,1)  r3 (1,1,1)
    rome      r1 (1,0,0)  r2 (1,0,0)  r3 (0,0,1)
    ft_l      r1 (1,0,1)  r2 (0,0,0)  r3 failed edit -> scored as unedited (1,0,0), left out of the means

PS = ES, rel_acc = ES / 2, NS = 0.5 (rome 0.25), MQ = 0, gen_acc = 0.25, loc_acc = 1.
edit_s per record: memla 10/20/30, rome 4/8/12, ft_l 2/4/6.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memla_mkeb import stats
from memla_mkeb.report import Invocation, ReportError, collect, write_report

FIXED = Path(__file__).parent / "data" / "bench_report" / "run"


def _summary(files_dir: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    rows = csv.DictReader(io.StringIO((files_dir / "summary.csv").read_text(encoding="utf-8")))
    return {(r["method"], r["metric"], r["view"]): r for r in rows}


@pytest.fixture
def fixed_run(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXED, run)
    return run


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (p.name.startswith("report") or "report_files" in p.parts)
    }


def test_report_hand_checked_numbers(fixed_run):
    out = write_report([fixed_run], n_boot=500, seed=0)
    assert out == fixed_run / "report.md"
    md = out.read_text(encoding="utf-8")
    s = _summary(fixed_run / "report_files")

    def mean(m, metric, view):
        return round(100 * float(s[(m, metric, view)]["mean"]), 1)

    # ES edit->edit and others, by hand from the table in the module docstring
    assert (mean("unedited", "ES", "e2e"), mean("unedited", "ES", "others")) == (33.3, 16.7)
    assert (mean("memla", "ES", "e2e"), mean("memla", "ES", "others")) == (100.0, 66.7)
    assert (mean("rome", "ES", "e2e"), mean("rome", "ES", "others")) == (66.7, 16.7)
    # ft_l: its failed edit (r3) is left out, so r1 and r2 only: e2e (1, 0), others (.5, 0)
    assert (mean("ft_l", "ES", "e2e"), mean("ft_l", "ES", "others")) == (50.0, 25.0)
    assert mean("memla", "rel_acc", "e2e") == 50.0 and mean("rome", "NS", "others") == 25.0
    # delta vs unedited, paired per record: memla e2e diffs (1, 1, 0), others (.5, 0, 1)
    assert round(100 * float(s[("memla", "ES", "e2e")]["delta_mean"]), 1) == 66.7
    assert round(100 * float(s[("memla", "ES", "others")]["delta_mean"]), 1) == 50.0
    # a constant sample has a zero-width interval
    assert "| memla | 3 | 3 | 0 | 100.0 [100.0, 100.0] | 66.7 [" in md  # attempted, edited, failed
    # bootstrap of (1, 1, 0): P(resample mean = 0) = 1/27 > 2.5 %, P(= 1) = 8/27 > 2.5 %
    assert "+66.7 [+0.0, +100.0]" in md
    # MEMLA minus the best baseline: ES others ft_l 25 beats rome 16.7; paired on ft_l's two edits,
    # MEMLA (.5, .5) minus ft_l (.5, 0) = (0, .5) -> +25.0 [+0.0, +50.0]; NS: ft_l 50 beats rome 25, diff 0
    assert "| ES | others | ft_l | 66.7 | 25.0 | +25.0 [+0.0, +50.0] | 2 | no clear difference |" in md
    assert "| ES | edit→edit | rome | 100.0 | 66.7 | +33.3 [" in md
    assert "| NS | edit→edit | ft_l | 50.0 | 50.0 | +0.0 [+0.0, +0.0] | 2 | no clear difference |" in md
    # counts, failures, restore checks, timing, seeds, hardware
    assert "| ft_l | en | 3 | 2 | 1 | 0 | 3 | NoNeuronsError ×1 |" in md
    assert "Restore checks: 9 passed, 0 mismatches" in md
    assert "| memla | 3 | 20.00 | 20.00 | 60.00 | – | 1.00 |" in md  # no CPU times in this file
    assert "| rome | 3 | 8.00 | 8.00 | 24.00 | – | 1.00 |" in md
    assert "Result rows: 12" in md  # the partial last line is not a row
    assert "editing/evaluation seed 42; bootstrap seed 0, 500 resamples" in md
    assert "CPU: test-cpu" in md
    assert "| unedited, memla, rome, ft_l | en | 3 | 12 | CPU: test-cpu (2 cores, 2 torch threads) |" in md
    # the Findings repeat the table's verdicts in words (no interval excludes 0) and name the failure
    assert ("No interval excludes zero: MEMLA neither beats nor loses to the best baseline on any metric here. "
            "No difference the intervals support on 8 of 8 comparisons") in md
    assert "**Failed edits.** ft_l 1 of 3 (edit language en)." in md
    assert "Regenerate: `memla-mkeb-report " in md and "--bootstrap 500` " in md
    # every metric the rows carry has values; the ones they predate are "not measured", never 0
    assert "- **NS_cf, ES_norm, PS_norm, NS_cf_norm** not measured: no row carries them" in md
    assert "skipped: no value" not in md and "computed for" not in md
    assert (fixed_run / "report_files" / "heatmap_memla_ES.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (fixed_run / "report_files" / "languages_en_baselines.png").is_file()


def test_report_is_byte_for_byte_deterministic(fixed_run, tmp_path):
    write_report([fixed_run], n_boot=300, seed=1)
    first = _tree_hashes(fixed_run)
    write_report([fixed_run], n_boot=300, seed=1)
    assert _tree_hashes(fixed_run) == first
    assert any(name.endswith(".png") for name in first)
    # the same through the console script, in a fresh process
    proc = subprocess.run([sys.executable, "-m", "memla_mkeb.report", str(fixed_run), "--bootstrap", "300",
                           "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _tree_hashes(fixed_run) == first
    # and a PNG carries no "Software"/time chunk
    png = (fixed_run / "report_files" / "heatmap_rome_ES.png").read_bytes()
    assert b"Software" not in png and b"tIME" not in png


def test_report_merges_shards_and_dedupes(fixed_run, tmp_path):
    rows = [json.loads(line) for line in (fixed_run / "results.jsonl").read_text().splitlines()[:-1]]
    a, b = tmp_path / "shards" / "a", tmp_path / "shards" / "b"
    a.mkdir(parents=True), b.mkdir(parents=True)
    for d in (a, b):
        shutil.copy(fixed_run / "plan.json", d / "plan.json")
    # odd rows to a, even rows to b, plus two rows present in both (resumed twice)
    (a / "results.shard0of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[0::2] + rows[1:4:2]))
    (b / "results.shard1of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]))
    write_report([fixed_run], out=tmp_path / "one" / "report.md", n_boot=200, plots=False)
    write_report([tmp_path / "shards"], out=tmp_path / "two" / "report.md", n_boot=200, plots=False)
    for name in ("summary.csv", "matrix.csv", "counts.csv", "timing.csv", "memla_vs_best.csv"):
        assert (tmp_path / "one" / "report_files" / name).read_bytes() == (tmp_path / "two" / "report_files" / name).read_bytes()
    c = collect([tmp_path / "shards"])
    assert len(c.rows) == 12 and c.duplicates == 2


def test_common_records_gives_every_method_of_a_run_dir_the_same_records(fixed_run, tmp_path):
    lines = (fixed_run / "results.jsonl").read_text().splitlines()[:-1]
    rows = [json.loads(line) for line in lines]
    last = max(r["record_index"] for r in rows)
    gone = next(r for r in rows if r["method"] == "memla" and r["record_index"] == last)
    (fixed_run / "results.jsonl").write_text("".join(line + "\n" for line, r in zip(lines, rows) if r is not gone))
    other = tmp_path / "other"  # a second run dir whose methods differ: judged on its own rows
    other.mkdir()
    extra = [dict(r, method="memla_x", key=r["key"].replace("memla|", "memla_x|"))
             for r in rows if r["method"] == "memla"]
    (other / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra))

    assert len(collect([fixed_run, other]).rows) == 11 + 3
    c = collect([fixed_run, other], common_records=True)
    per_method = {m: sorted(r["record_index"] for r in c.rows.values() if r["method"] == m)
                  for m in ("unedited", "memla", "rome", "ft_l", "memla_x")}
    assert per_method["memla_x"] == sorted(r["record_index"] for r in extra)  # not cut by the other dir
    assert {len(v) for m, v in per_method.items() if m != "memla_x"} == {2} and last not in per_method["rome"]
    assert c.left_out == 3

    out = write_report([fixed_run, other], out=tmp_path / "rep" / "report.md", n_boot=100, plots=False,
                       common_records=True)
    md = out.read_text(encoding="utf-8")
    assert "(`--common-records`); 3 rows of further records" in md
    assert re.search(r"^Regenerate: `memla-mkeb-report .* --common-records`", md, re.M)
    assert Invocation.from_markdown(md).common_records


def test_report_conflicting_duplicate_is_an_error(fixed_run, tmp_path):
    rows = [json.loads(line) for line in (fixed_run / "results.jsonl").read_text().splitlines()[:-1]]
    bad = dict(rows[4])
    bad["scores"] = json.loads(json.dumps(bad["scores"]))
    bad["scores"]["en"]["ES"] = 0.0
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(ReportError, match=r"conflicting results for memla\|en\|2"):
        collect([fixed_run, other])
    proc = subprocess.run([sys.executable, "-m", "memla_mkeb.report", str(fixed_run), str(other)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "conflicting results for memla|en|2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_missing_run_dir_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memla_mkeb.report", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"memla-mkeb-report: error: run dir not found: {tmp_path / 'nope'}"


def test_bootstrap_is_seeded_and_label_stable():
    vals = [0.0, 1.0, 1.0, 0.5, 0.25, 1.0, 0.0]
    a = stats.bootstrap(vals, label="x", seed=0, n_boot=1000)
    assert a == stats.bootstrap(vals, label="x", seed=0, n_boot=1000)
    assert a.lo <= a.mean <= a.hi and a.n == 7 and abs(a.mean - sum(vals) / 7) < 1e-12
    cont = [0.13, 0.91, 0.42, 0.77, 0.05, 0.68, 0.33, 0.59]
    assert stats.bootstrap(cont, label="y", seed=0, n_boot=200) != stats.bootstrap(cont, label="x", seed=0, n_boot=200)
    assert stats.bootstrap([], label="x", seed=0, n_boot=10).mean is None
    assert stats.bootstrap([0.3], label="x", seed=0, n_boot=10) == stats.Estimate(1, 0.3, 0.3, 0.3)
    assert stats.record_value({"en": {"ES": 1.0}, "zh": {"ES": 0.0}, "fr": {"ES": None}}, "en", "ES", "others") == 0.0


def test_unedited_evaluations_repeated_by_a_second_run_dir_are_counted_as_such(fixed_run, tmp_path):
    # an ablation run dir re-evaluates the unedited model on records the main run dir already has
    second = tmp_path / "ablations"
    second.mkdir()
    rows = [json.loads(line) for line in (fixed_run / "results.jsonl").read_text().splitlines()[:-1]]
    (second / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["method"] == "unedited"))
    shutil.copy(fixed_run / "plan.json", second / "plan.json")
    for d, ids in ((fixed_run, ("1", "2", "3")), (second, ("1", "2"))):
        (d / "unedited_cache.jsonl").write_text(
            "".join(json.dumps({"record_id": i, "eval_s": 2.0 * len(ids)}) + "\n" for i in ids))
    md = write_report([fixed_run, second], out=tmp_path / "both.md", n_boot=50, plots=False).read_text("utf-8")
    # 3 evaluations of 6 s and 2 of 4 s: mean 26 / 5 = 5.2 s
    assert "(evaluation of the unedited model: 5 evaluations of 3 records, mean 5.20 s)" in md
    md = write_report([fixed_run], out=tmp_path / "one.md", n_boot=50, plots=False).read_text("utf-8")
    assert "(evaluation of the unedited model: 3 records, mean 6.00 s)" in md
