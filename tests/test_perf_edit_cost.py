"""benchmarks/perf/edit_cost.py --from-run-dir: the cheap-MEMLA/ROME edit-time ratio read from benchmark rows."""
from __future__ import annotations

import json


def _row(method, rid, index, edit_s, cpu, cached=False, es=1.0):
    scores = {"en": {"ES": es, "PS": es, "NS_cf": 1.0, "loc_acc": 1.0},
              "zh": {"ES": 0.0, "PS": 0.5, "NS_cf": 1.0, "loc_acc": 0.5}}
    stats = {"attribution_s": 0.0 if cached else 5.0, "cache_hits": 3 if cached else 0} if "memla" in method else {}
    return {"method": method, "record_id": rid, "record_index": index, "source": "en", "status": "ok",
            "edit_s": edit_s, "edit_cpu_s": cpu, "edit_stats": stats, "scores": scores}


def test_ratio_from_run_dir_rows(tmp_path, capsys, repo_script):
    rows = [_row("memla", "7", 0, 2.0, 2.0, cached=True), _row("memla_ig5", "7", 0, 10.0, 8.0),
            _row("rome", "7", 0, 100.0, 40.0),  # ROME paused: wall > CPU
            _row("memla", "9", 1, 4.0, 4.0, cached=True), _row("memla_ig5", "9", 1, 30.0, 12.0),
            _row("rome", "9", 1, 100.0, 60.0),
            _row("memla_ig5", "11", 2, 50.0, 50.0)]  # no ROME row yet: left out
    (tmp_path / "results.shard0of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mod = repo_script("benchmarks/perf/edit_cost.py")
    got, names = mod.rows_from_run_dir(tmp_path, "ig5", "en")
    assert names == ["memla", "memla_ig5", "rome"] and {r["record"] for r in got} == {"7", "9"}
    assert got[0]["ES"] == 1.0 and got[0]["ES_others"] == 0.0 and got[0]["PS_others"] == 0.5
    assert mod.main(["--from-run-dir", str(tmp_path), "--cheap", "ig5"]) == 0
    out = capsys.readouterr().out
    assert "memla_ig5 / rome edit time: 0.200x wall (0.200x CPU)" in out  # (10+30)/200, (8+12)/100
    assert "memla / rome edit time: 0.030x wall (0.060x CPU) (attribution read from the neuron cache" in out
    assert " cached " in out
