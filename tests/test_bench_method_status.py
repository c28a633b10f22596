"""A host editor that does not edit is marked "not functional on this model" and is no baseline.

Fixture, source en, five dev records (the fewest that give a verdict); ES edit→edit (en):

    method    records 1..5
    unedited  1 0 0 0 0     mean 1/5
    mend      0 0 0 0 0     mean 0     -> not functional (0 is not above 1/5)
    rome      1 1 0 0 0     mean 2/5   -> functional
    memla     1 1 1 1 1
"""
from __future__ import annotations

import json

from memla_mkeb.collect import collect
from memla_mkeb.compare import baselines_of
from memla_mkeb.method_status import NOT_FUNCTIONAL, check_functional, main, not_functional, read_status
from memla_mkeb.report import write_report
from memla_mkeb.report_data import method_kinds

ES = {"unedited": (1, 0, 0, 0, 0), "mend": (0, 0, 0, 0, 0), "rome": (1, 1, 0, 0, 0), "memla": (1, 1, 1, 1, 1)}
KIND = {"unedited": "unedited", "mend": "easyedit", "rome": "easyedit", "memla": "memla"}


def _rows() -> list[dict]:
    rows = []
    for method, es in ES.items():
        for i, v in enumerate(es, 1):
            sc = {"ES": float(v), "PS": float(v), "NS_cf": 1.0, "loc_acc": 1.0}
            rows.append({"key": f"{method}|en|{i}", "method": method, "kind": KIND[method], "source": "en",
                         "record_id": str(i), "record_index": i - 1, "status": "ok", "cfg_id": method, "seed": 42,
                         "edit_s": 1.0, "eval_s": 1.0, "restore": {"checked": 1, "restored": 1},
                         "scores": {"en": sc, "fr": sc}})
    return rows


def _run_dir(tmp_path):
    run = tmp_path / "dev"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    return run


def test_check_functional_compares_with_the_unedited_model_on_the_same_records():
    mend = check_functional(_rows(), "mend", n_boot=0)
    assert mend["functional"] is False
    assert mend["es_e2e"]["mean"] == 0.0 and abs(mend["unedited_es_e2e"]["mean"] - 1 / 5) < 1e-12
    assert abs(mend["difference"]["mean"] + 1 / 5) < 1e-12 and mend["records"] == ["1", "2", "3", "4", "5"]
    assert check_functional(_rows(), "rome", n_boot=0)["functional"] is True
    few = [r for r in _rows() if int(r["record_id"]) <= 4]
    assert check_functional(few, "mend", n_boot=0)["functional"] is None  # 4 records: no verdict


def test_failed_edits_do_not_count_as_evidence():
    rows = _rows()
    for r in rows:
        if r["method"] == "rome" and r["record_id"] == "3":
            r["status"] = "error"
    rome = check_functional(rows, "rome", n_boot=0)
    assert rome["records"] == ["1", "2", "4", "5"] and rome["attempted"] == 5 and rome["functional"] is None


def test_marked_method_leaves_the_best_baseline_and_gets_a_section(tmp_path):
    run = _run_dir(tmp_path)
    assert main([str(run), "--method", "mend", "--method", "rome", "--bootstrap", "0",
                 "--mend-provenance", str(_provenance(tmp_path))]) == 0
    assert set(read_status([run])) == {"mend", "rome"} and set(not_functional([run])) == {"mend"}
    kinds = method_kinds(collect([run]))
    assert kinds["mend"] == NOT_FUNCTIONAL and kinds["rome"] == "easyedit"
    assert baselines_of(["unedited", "memla", "rome", "mend"], kinds) == ["rome"]
    out = write_report([run], tmp_path / "report.md", n_boot=0, plots=False)
    text = out.read_text(encoding="utf-8")
    assert "## Methods not functional on this model" in text
    assert "**mend**: ES edit→edit 0.0" in text and "trained for 120 iterations (60 optimiser updates" in text
    assert "**rome**" not in text.split("## Methods not functional on this model")[1].split("##")[0]


def test_without_evidence_nothing_is_marked(tmp_path):
    run = _run_dir(tmp_path)
    assert not_functional([run]) == {}
    assert method_kinds(collect([run]))["mend"] == "easyedit"


def _provenance(tmp_path):
    p = tmp_path / "provenance.json"
    p.write_text(json.dumps({"steps": 120, "budget": {"iterations": 120, "optimizer_updates": 60, "lr": 1e-4,
                                                      "seconds": 2400.0, "device": "cpu"},
                             "final_train": {"loss/edit": 1.5, "loss/loc": 0.01, "edit/acc": 0.4}}), encoding="utf-8")
    return p
