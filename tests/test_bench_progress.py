"""memla_mkeb.progress: finished rows per method, failed edits, sequences and batches finished, sequences under way."""
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
    finished = {"key": "seq10|ike|en|1", "method": "ike", "source": "en", "record_ids": ["1", "2", "3"],
                "steps": [], "final": {}}
    (run / "sequences.jsonl").write_text(json.dumps(finished) + "\n", encoding="utf-8")
    # batches are summed per method: two batches of memla (2 + 1 facts), one of memit
    batches = [{"key": f"batch2|{m}|en|{ids[0]}", "method": m, "source": "en", "record_ids": ids}
               for m, ids in (("memla", ["1", "2"]), ("memit", ["1", "2"]), ("memla", ["3"]))]
    (run / "batches.shard1of2.jsonl").write_text("".join(json.dumps(b) + "\n" for b in batches), encoding="utf-8")
    state = run / ".sequence_state" / "seq10_rome_en_1"
    state.mkdir(parents=True)
    (state / "state.json").write_text(json.dumps({"identity": {"key": "seq10|rome|en|1"}, "steps": [{}] * 7,
                                                  "final": {"scores": [{}] * 2}}), encoding="utf-8")
    text = report([run], expect=30)
    lines = [line.split() for line in text.splitlines()]
    assert ["memla", "en", "3", "of", "30", "rows"] in lines
    assert ["rome", "en", "2", "of", "30", "rows", "(1", "failed)"] in lines
    assert "  sequences finished: ike en 1 (3 edits)" in text.splitlines()
    assert "  batches finished: memit en 1 (2 facts), memla en 2 (3 facts)" in text.splitlines()
    assert "  sequence under way: seq10|rome|en|1: 7 edits, 2 rescored at the end" in text.splitlines()
    assert main([str(tmp_path / "nowhere")]) == 2 and "not a directory" in capsys.readouterr().err


def test_progress_prices_what_is_left_at_the_rows_mean_time(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"key": f"rome|en|{i}", "method": "rome", "source": "en", "record_id": str(i), "status": "ok",
             "edit_s": edit, "eval_s": 30.0} for i, edit in ((1, 450.0), (2, 570.0))]
    rows += [{"key": f"unedited|en|{i}", "method": "unedited", "kind": "unedited", "source": "en",
              "record_id": str(i), "status": "ok", "edit_s": 0.0, "eval_s": 0.0} for i in (1, 2)]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # the unedited evaluation's time is in the per-record cache (record 2's entry has none)
    cache = [{"record_id": "1", "base_id": "b", "eval_s": 60.0}, {"record_id": "2", "base_id": "b"}]
    (run / "unedited_cache.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cache), encoding="utf-8")
    text = report([run], expect=5).splitlines()
    # rome: (480 + 600) / 2 = 540 s a row = 9.0 min; 3 rows left = 27 min; unedited: 60 s, 3 left = 3 min
    assert "  rome                               en  2 of 5 rows, 9.0 min/row, ~27 min left" in text
    assert "  unedited                           en  2 of 5 rows, 1.0 min/row, ~3 min left" in text
    assert text[-1].startswith("  left: ~30 min of one-thread work")
    assert "left" not in report([run]).split("rows, 9.0 min/row")[1]  # without --expect nothing is priced
