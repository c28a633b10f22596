"""The report's fair head-to-head on a hand-made protocol-2 run: composite, locality margin, failures, Pareto.

Source en, evaluated in en and fr ("others" = fr), 4 records, every record the same values so
every interval is a point and every number below is exact:

    method     en (ES, PS, NS_cf)   fr (ES, PS, NS_cf)   rows
    unedited   (0, 0, 1)            (0, 0, 1)            4 ok
    memla      (1, 1, 1)            (.75, .5, 1)         4 ok
    rome       (1, 1, .95)          (.5, .5, 1)          3 ok, record 4 failed (scored as unedited)
    lora       (1, 1, 0)            (1, 1, 0)            4 ok: writes target_new everywhere
    memla@0.3  (1, 1, 1)            (.25, .25, 1)        grid point 0 of memla's apply_scale
    memla@1.0  (1, 1, .2)           (1, 1, .2)           grid point 1

Composites (others): memla HM(.75, .5, 1) = 9/13, rome HM(.5, .5, 1) = .6, lora 0.
NS_cf change against the unedited model: rome -5 points (e2e), 0 (others): within the 10-point
margin; lora -100: outside, so lora, the best baseline on ES/PS by mean, is not compared there.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from memla_mkeb.composite_sections import pareto_points
from memla_mkeb.report import ReportError, collect, write_report

ZERO = {"NS": 0.0, "MQ": 0.0, "ES_norm": 0.0, "PS_norm": 0.0, "NS_cf_norm": 1.0, "rel_acc": 0.0, "gen_acc": 0.0,
        "loc_acc": 1.0, "port_acc": 0.0}
SCORES = {
    "unedited": ((0, 0, 1), (0, 0, 1)),
    "memla": ((1, 1, 1), (0.75, 0.5, 1)),
    "rome": ((1, 1, 0.95), (0.5, 0.5, 1)),
    "lora": ((1, 1, 0), (1, 1, 0)),
    "memla@0.3": ((1, 1, 1), (0.25, 0.25, 1)),
    "memla@1.0": ((1, 1, 0.2), (1, 1, 0.2)),
}
KIND = {"unedited": "unedited", "rome": "easyedit", "lora": "easyedit"}


def _scores(en: tuple, fr: tuple) -> dict:
    return {lang: {**ZERO, "ES": t[0], "PS": t[1], "NS_cf": t[2]} for lang, t in (("en", en), ("fr", fr))}


def _row(method: str, rid: int, status: str = "ok") -> dict:
    scores = _scores(*SCORES["unedited" if status == "error" else method])
    row = {"key": f"{method}|en|{rid}", "method": method, "kind": KIND.get(method, "memla"), "source": "en",
           "record_id": str(rid), "record_index": rid, "status": status, "scores": scores, "seed": 42,
           "cfg_id": method, "hardware": "CPU: test", "edit_s": 1.0, "eval_s": 1.0,
           "restore": {"checked": 1, "restored": 1}, "protocol": 2, "code": {"commit": "c" * 40, "dirty": False},
           "error": {"type": "NoNeuronsError", "message": "x"} if status == "error" else None}
    if "@" in method:
        value = float(method.split("@")[1])
        row["grid_point"] = {"method": "memla", "knob": "apply_scale", "value": value, "index": int(value > 0.5)}
    return row


@pytest.fixture
def fair_run(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    rows = [_row(m, r, "error" if (m, r) == ("rome", 4) else "ok") for m in SCORES for r in range(1, 5)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run


def test_composite_table_margin_and_findings(fair_run):
    md = write_report([fair_run], n_boot=200, seed=0).read_text(encoding="utf-8")
    assert "- Protocol: protocol 2:" in md and "- Code: `cccccccccccc` (24 rows)\n" in md
    # composite table: attempts, parts, composites (exact: constant samples), the margin
    assert "| memla | 4 | 4 | 0 | 75.0 [75.0, 75.0] | 50.0 [50.0, 50.0] | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] " \
           "| 69.2 [69.2, 69.2] |" in md
    assert "| rome | 4 | 3 | 1 | 50.0 [50.0, 50.0] |" in md and "| +0.0 [+0.0, +0.0] | yes |" in md
    assert "| lora | 4 | 4 | 0 |" in md and "| -100.0 [-100.0, -100.0] | no |" in md
    # MEMLA minus the best baseline by composite: rome (lora's composite is 0), paired on rome's 3 edits
    assert "| others | rome | 69.2 | 60.0 | +9.2 [+9.2, +9.2] | 3 | MEMLA higher |" in md
    # ES/PS: lora has the highest ES others (100) but is outside the margin; rome is the one compared
    assert "| ES | others | rome | 75.0 | 50.0 | +25.0 [+25.0, +25.0] | 3 | MEMLA higher |" in md
    assert "only among those within the locality margin: rome" in md
    # failures named in the Findings and left out of the means (rome's failed record would add ES 0)
    assert "**Failed edits.** rome 1 of 4 (edit language en)." in md
    assert "**What the Findings read.** Locality in these Findings is NS_cf" in md
    assert (fair_run / "report_files" / "pareto_en.png").read_bytes()[:4] == b"\x89PNG"
    assert "composite.csv" in {p.name for p in (fair_run / "report_files").iterdir()}


def test_code_line_counts_rows_and_links_a_code_note(fair_run):
    rows = [json.loads(x) for x in (fair_run / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in rows[:5]:
        row["code"] = {"commit": "d" * 40, "dirty": True}
    (fair_run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (fair_run.parent / "CODE.md").write_text("which code ran\n", encoding="utf-8")
    md = write_report([fair_run], n_boot=50, seed=0, plots=False).read_text(encoding="utf-8")
    code = [line for line in md.splitlines() if line.startswith("- Code: ")][0]
    assert code.startswith("- Code: `dddddddddddd (dirty)` (5 rows), `cccccccccccc` (19 rows)")
    assert code.endswith(f"; which code made the rows: `{(fair_run.parent / 'CODE.md').as_posix()}`")


def test_pareto_points_draw_the_grid_as_memla_curve(fair_run):
    from memla_mkeb.report_data import ReportData
    from memla_mkeb.invocation import Invocation

    c = collect([fair_run])
    d = ReportData.load(c, fair_run / "r.md", n_boot=0, seed=0, plots=False,
                        shown=Invocation.of([fair_run], fair_run / "r.md", n_boot=0, seed=0, plots=False,
                                            common_records=False))
    points = {p["method"]: p for p in pareto_points(d, "en")}
    assert set(points) == {"unedited", "memla", "rome", "lora"}  # grid points are a curve, not points
    assert points["unedited"]["is_reference"] and (points["unedited"]["x"], points["unedited"]["y"]) == (1.0, 0.0)
    assert points["memla"]["curve"] == [(1.0, 0.25, "0.3"), (0.2, 1.0, "1")] or \
        points["memla"]["curve"] == [(1.0, 0.25, "0.3"), (0.2, 1.0, "1.0")]
    assert points["lora"]["curve"] is None and (points["lora"]["x"], points["lora"]["y"]) == (0.0, 1.0)


def test_rows_of_two_protocols_are_not_reported_together(fair_run):
    old = _row("unedited", 9)
    del old["protocol"]
    with (fair_run / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(old) + "\n")
    with pytest.raises(ReportError, match="different evaluation protocols"):
        collect([fair_run])


PRESET_SCORES = {
    "memla_refined": ((1, 1, 1), (0.75, 0.75, 1)),  # composite others HM(.75, .75, 1) = 9/11
    "memla_refined_no_k_of_n": ((1, 1, 1), (0.5, 0.5, 1)),  # HM(.5, .5, 1) = .6
}


def test_refined_preset_is_judged_on_its_own(fair_run):
    """memla_refined against memla and every baseline, its switch against the ablation, and the paper's claim
    checked for it apart from memla's; a run without preset rows shows none of it."""
    before = write_report([fair_run], n_boot=200, seed=0).read_text(encoding="utf-8")
    assert "## The refined preset" not in before and "**The refined preset" not in before
    SCORES.update(PRESET_SCORES)
    try:
        rows = [_row(m, r) for m in PRESET_SCORES for r in range(1, 5)]
    finally:
        for m in PRESET_SCORES:
            del SCORES[m]
    with (fair_run / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    md = write_report([fair_run], n_boot=200, seed=0).read_text(encoding="utf-8")
    section = md.split("## The refined preset\n", 1)[1].split("\n## ", 1)[0]
    # preset minus memla (4 pairs): 9/11 - 9/13 = +12.6; minus rome on rome's 3 successful edits: 9/11 - .6 = +21.8
    assert "| memla | 4 | 81.8 | 69.2 | +12.6 [+12.6, +12.6] | +0.0 [+0.0, +0.0] | +25.0 [+25.0, +25.0] " \
           "| +0.0 [+0.0, +0.0] | preset higher |" in section
    assert "| rome | 3 | 81.8 | 60.0 | +21.8 [+21.8, +21.8] | +25.0 [+25.0, +25.0] |" in section
    assert "| lora | 4 | 81.8 | 0.0 | +81.8 [+81.8, +81.8] | -25.0 [-25.0, -25.0] |" in section
    assert "| memla_refined_no_k_of_n | 4 | 81.8 | 60.0 | +21.8 [+21.8, +21.8] | +25.0 [+25.0, +25.0] |" in section
    # Findings: the preset's own paragraph; ES/PS against rome (lora is outside the locality margin)
    para = md.split("**The refined preset, edit language en**", 1)[1].split("\n", 1)[0]
    assert "81.8 is above memla 69.2 (+12.6 [+12.6, +12.6], n = 4)" in para
    assert "81.8 is above rome 60.0 (+21.8 [+21.8, +21.8], n = 3)" in para
    assert "supported on 2, contradicted on 0, not resolved on 2 of 4 metrics" in para
    assert "ES supported (+25.0 [+25.0, +25.0] vs rome, n = 3)" in para
    # memla's own claim is unchanged by the preset's rows
    assert before.split("**The paper's claim.**", 1)[1].split("\n## ", 1)[0] == \
        md.split("**The paper's claim.**", 1)[1].split("\n## ", 1)[0]
    assert "preset.csv" in {p.name for p in (fair_run / "report_files").iterdir()}


def test_preset_table_shows_composites_on_the_paired_records(fair_run):
    """An ablation run on fewer records than the preset (the first 30 of a run grown to 60): the table's two
    composite columns are taken on the records both have, so they subtract to its paired difference."""
    SCORES.update(PRESET_SCORES)
    try:
        rows = [_row("memla_refined", r) for r in range(1, 5)] + [_row("memla_refined_no_k_of_n", r) for r in (1, 2)]
    finally:
        for m in PRESET_SCORES:
            del SCORES[m]
    rows[3]["scores"]["fr"].update(ES=0.25, PS=0.25)  # the preset's record 4, which the ablation lacks
    with (fair_run / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    md = write_report([fair_run], n_boot=50, seed=0, plots=False).read_text(encoding="utf-8")
    # the preset over its 4 records: HM(0.625, 0.625, 1) = 0.714; on the 2 pairs: 9/11 = 0.818
    assert "| memla_refined | 4 | 4 | 0 | 62.5 [" in md
    section = md.split("## The refined preset\n", 1)[1].split("\n## ", 1)[0]
    assert "| memla_refined_no_k_of_n | 2 | 81.8 | 60.0 | +21.8 [+21.8, +21.8] |" in section
    assert "| memla | 4 | 71.4 | 69.2 |" in section


def test_first_n_records_keeps_a_comparison_reproducible_as_runs_grow(fair_run):
    from memla_mkeb.invocation import Invocation

    md = write_report([fair_run], n_boot=50, seed=0, plots=False, first=3).read_text(encoding="utf-8")
    assert "`--first 3`); rows of later records are not read" in md
    # the page is the same bytes whether or not later records' rows exist (a series still growing)
    results = fair_run / "results.jsonl"
    full = results.read_text(encoding="utf-8")
    early = [x for x in full.splitlines(keepends=True) if json.loads(x)["record_index"] < 3]
    assert len(full.splitlines()) - len(early) == 12  # record_index 3 and 4 of six methods
    results.write_text("".join(early), encoding="utf-8")
    assert write_report([fair_run], n_boot=50, seed=0, plots=False, first=3).read_text(encoding="utf-8") == md
    results.write_text(full, encoding="utf-8")
    assert Invocation.from_markdown(md).first == 3 and "--no-plots --first 3`" in md
    assert "| memla | 2 | 2 | 0 |" in md  # records 1 and 2 only
    rows = [json.loads(x) for x in (fair_run / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    del rows[0]["record_index"]
    (fair_run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ReportError, match="has no record_index, so --first cannot select it"):
        collect([fair_run], first=3)
    with pytest.raises(ReportError, match="--first must be at least 1"):
        collect([fair_run], first=0)
