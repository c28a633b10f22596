"""The report's "Edit languages compared": one method edited from several languages, on the same facts.

Synthetic rows (evaluated in en, de, fr, ja) built so every figure is known: MEMLA's edits stated in en
reach the untouched languages (fr, ja: ES 1) and those stated in de do not (ES 0), so de minus en is -100
with a zero-width interval; both score 1 in their own language, where the per-language "others" view would
have mixed in each other's home language. A failed de edit takes its record out of both edit languages;
ROME, edited from en only, and the unedited model get no rows. The Findings say the same in words.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from memla_mkeb.report import write_report

LANGS = ("en", "de", "fr", "ja")
N = 6
KINDS = {"unedited": "unedited", "memla": "memla", "rome": "easyedit"}


def _scores(method: str, source: str) -> dict[str, dict[str, float]]:
    out = {}
    for lang in LANGS:
        home = lang == source
        es = 1.0 if home or (method == "memla" and source == "en") else 0.0
        out[lang] = {"ES": es, "PS": es, "NS": 0.5, "MQ": 0.0, "NS_cf": 0.25 if source == "en" else 0.75}
    return out


def _row(method: str, source: str, i: int) -> dict[str, Any]:
    failed = method == "memla" and source == "de" and i == 2
    return {"key": f"{method}|{source}|{i}", "method": method, "kind": KINDS[method], "source": source,
            "record_id": str(i), "record_index": i, "status": "error" if failed else "ok",
            "error": {"type": "X", "message": "x"} if failed else None, "seed": 7, "cfg_id": f"cfg-{method}",
            "hardware": "CPU: test", "edit_s": 1.0, "eval_s": 0.5, "restore": {"checked": 1, "restored": 1},
            "scores": _scores(method, source)}


def _run(root: Path) -> Path:
    rows = [_row("unedited", s, i) for s in ("en", "de") for i in range(N)]
    rows += [_row("memla", s, i) for s in ("en", "de") for i in range(N)]
    rows += [_row("rome", "en", i) for i in range(N)]
    root.mkdir(parents=True)
    (root / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), "utf-8")
    plan = {"data_ids": None, "data_meta": {}, "data_path": "/somewhere/tiny_mkeb.json",
            "methods": [{"name": m, "kind": k, "overrides": {}} for m, k in KINDS.items()],
            "model": {"name": "tiny", "name_or_path": "tiny-model", "device": "cpu", "dtype": None}}
    (root / "plan.json").write_text(json.dumps(plan, sort_keys=True), "utf-8")
    return root


def test_same_facts_from_two_edit_languages(tmp_path):
    md = write_report([_run(tmp_path / "run")], tmp_path / "rep.md", n_boot=50, plots=False).read_text("utf-8")
    section = md.split("## Edit languages compared\n", 1)[1].split("\n## ", 1)[0]
    assert "Edited in en, de; untouched languages: fr ja." in section
    lines = [line for line in section.splitlines() if line.startswith("| memla |")]
    # records: the 5 both edit languages edited (record 2 failed in de); ES at home, then untouched ES, PS, NS_cf
    assert lines == [
        "| memla | en | 5 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] | 25.0 [25.0, 25.0] "
        "| reference | reference | reference | reference |",
        "| memla | de | 5 | 100.0 [100.0, 100.0] | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | 75.0 [75.0, 75.0] "
        "| +0.0 [+0.0, +0.0] | -100.0 [-100.0, -100.0] | -100.0 [-100.0, -100.0] | +50.0 [+50.0, +50.0] |"]
    assert "| rome |" not in section and "| unedited |" not in section
    findings = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert ("`memla` (5 records), edited in de minus en: ES -100.0 [-100.0, -100.0] (lower), "
            "NS_cf +50.0 [+50.0, +50.0] (higher).") in findings
    with open(tmp_path / "rep_files" / "edit_languages.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    de_es = next(r for r in rows if r["source"] == "de" and r["metric"] == "ES" and r["view"] == "untouched")
    assert (de_es["reference"], de_es["untouched_langs"], de_es["records"]) == ("en", "fr ja", "5")
    assert float(de_es["mean"]) == 0.0 and float(de_es["diff_mean"]) == -1.0


def test_no_section_with_one_edit_language(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [_row(m, "en", i) for m in ("unedited", "memla") for i in range(3)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    md = write_report([run], tmp_path / "rep.md", n_boot=10, plots=False).read_text("utf-8")
    assert "## Edit languages compared" not in md
    assert not (tmp_path / "rep_files" / "edit_languages.csv").exists()
