"""The report's generation-based success section, on the fixed results file of test_bench_report.

The fixed rows (3 records, source en, evaluated in en/zh/fr) get generation metrics for the
unedited model and MEMLA only; rome and ft_l keep rows made before those metrics existed.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from memla_mkeb.report import write_report

FIXED = Path(__file__).parent / "data" / "bench_report" / "run"

# per record id: (gen_ES in en, gen_ES_old in en); zh/fr answers name neither target
GEN = {"unedited": {"1": (0, 1), "2": (0, 1), "3": (0, 0)},
       "memla": {"1": (1, 0), "2": (1, 1), "3": (0, 1)}}


def _with_generation(run: Path) -> None:
    out = []
    for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the fixed file ends with a partial line
            continue
        said = GEN.get(row["method"], {}).get(row["record_id"])
        if said is not None:
            for lang, sc in row["scores"].items():
                new, old = said if lang == "en" else (0, 0)
                sc.update(gen_ES=float(new), gen_PS=float(new) / 2, gen_ES_old=float(old), gen_PS_old=float(old),
                          gen_NS=1.0 if row["method"] == "unedited" else 0.5)
            row["gen"] = {"max_new_tokens": 20, "prompt_format": "chat"}
        out.append(json.dumps(row))
    (run / "results.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")


def test_generation_section_beside_es_ps(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXED, run)
    _with_generation(run)
    md = write_report([run], n_boot=200, seed=0, plots=False).read_text(encoding="utf-8")
    section = md.split("## What the edited model says", 1)[1].split("\n## ", 1)[0]
    assert "at most 20 tokens, asked under the 'chat' prompt format" in section
    e2e, others = section.split("(edit→edit):", 1)[1].split("(others):", 1)
    # memla in en: gen_ES (1, 1, 0) -> 66.7; gen_ES_old (0, 1, 1) -> 66.7; ES 100 as in the main tables
    memla = next(line for line in e2e.splitlines() if line.startswith("| memla |"))
    cells = [c.strip() for c in memla.strip("|").split("|")]
    assert cells[1].startswith("100.0") and cells[2].startswith("66.7 [") and cells[3].startswith("66.7 [")
    assert cells[5].startswith("33.3 [") and cells[7] == "50.0 [50.0, 50.0]"  # gen_PS = gen_ES / 2; gen_NS
    unedited = next(line for line in others.splitlines() if line.startswith("| unedited |"))
    assert "| 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] |" in unedited and unedited.rstrip().endswith("| 100.0 [100.0, 100.0] |")
    # rome's rows predate the metrics: its ES is shown, the rest is "not measured"
    rome = next(line for line in e2e.splitlines() if line.startswith("| rome |"))
    assert rome.count("not measured") == 5 and "66.7 [" in rome
    rows = list(csv.DictReader(io.StringIO((run / "report_files" / "generation.csv").read_text(encoding="utf-8"))))
    got = {(r["method"], r["view"], r["metric"]): r for r in rows}
    assert got[("memla", "e2e", "gen_ES")]["records"] == "3" and got[("memla", "e2e", "gen_ES")]["mean"] == "0.6667"
    assert ("rome", "e2e", "gen_ES") not in got and ("rome", "e2e", "ES") in got


def test_no_generation_section_for_rows_made_before_it(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXED, run)
    md = write_report([run], n_boot=50, seed=0, plots=False).read_text(encoding="utf-8")
    assert "What the edited model says" not in md and not (run / "report_files" / "generation.csv").exists()
