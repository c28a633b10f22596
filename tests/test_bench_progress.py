"""memla_mkeb.progress: finished rows per method, failed edits, sequences finished and under way."""
from __future__ import annotations

import json

from memla_mkeb.progress import main, report


def test_progress_counts_rows_and_open_sequences(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"key": f"{m}|en|{i}", "method": m, "source": "en", "record_id": str(i), "status": st}
            for m, st, ids in (("memla", "ok", (1, 2, 3)), ("rome", "ok", (1,)), ("rome", "error", (2,)))
            for i in ids]
    (run / "results.shard0of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    (run / "results.shard1of2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[3:]), encoding="utf-8")
    finished = {"key": "seq10|ike|en|1", "method": "ike", "source": "en", "steps": [], "final": {}}
    (run / "sequences.jsonl").write_text(json.dumps(finished) + "\n", encoding="utf-8")
    state = run / ".sequence_state" / "seq10_rome_en_1"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"identity": {"key": "seq10|rome|en|1"}, "steps": [{}] * 7,
                                                  "final": {"scores": [{}] * 2}}), encoding="utf-8")
    text = report([run], expect=30)
    lines = [line.split() for line in text.splitlines()]
    assert ["memla", "en", "3", "of", "30", "rows"] in lines
    assert ["rome", "en", "2", "of", "30", "rows", "(1", "failed)"] in lines
    assert "  sequences finished: seq10|ike|en|1" in text.splitlines()
    assert "  sequence under way: seq10|rome|en|1: 7 edits, 2 rescored at the end" in text.splitlines()
    assert main([str(tmp_path / "nowhere")]) == 2 and "not a directory" in capsys.readouterr().err
