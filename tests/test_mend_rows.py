"""benchmarks/mkeb/results/protocol2/mend_rows.py: the series' MEND rows come from one checkpoint.

MEND rows made with another checkpoint than the cached one are moved aside (kept in the run dir's
archive, out of the files the harness and the report read), every other row stays byte for byte, and
nothing moves while the recorded checkpoint is the cached one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest



@pytest.fixture
def mend_rows(results_script):
    return results_script("protocol2/mend_rows.py")


def _line(method: str, record: int) -> str:
    return json.dumps({"key": f"{method}|en|{record}", "method": method, "record_id": str(record)}) + "\n"


def _series(root: Path) -> dict[str, str]:
    files = {
        "en/results.shard0of2.jsonl": _line("unedited", 1) + _line("mend", 1) + _line("rome", 1),
        "en/results.shard1of2.jsonl": _line("mend", 2) + _line("memla", 2) + '{"key": "torn',
        "zh_fr/results.shard0of2.jsonl": _line("ike", 3),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return files


def test_rows_of_another_checkpoint_move_aside_once(mend_rows, tmp_path, monkeypatch, capsys):
    files = _series(tmp_path)
    cached = {"ckpt-a": "aaa"}
    monkeypatch.setattr(mend_rows, "current_checkpoints", lambda: dict(cached))
    assert mend_rows.main(["en", "zh_fr", "--root", str(tmp_path)]) == 0
    en = tmp_path / "en"
    assert (en / "results.shard0of2.jsonl").read_text() == _line("unedited", 1) + _line("rome", 1)
    assert (en / "results.shard1of2.jsonl").read_text() == _line("memla", 2) + '{"key": "torn'
    assert (en / mend_rows.ARCHIVE).read_text() == _line("mend", 1) + _line("mend", 2)
    assert (tmp_path / "zh_fr/results.shard0of2.jsonl").read_text() == files["zh_fr/results.shard0of2.jsonl"]
    assert not (tmp_path / "zh_fr" / mend_rows.ARCHIVE).exists()
    marker = json.loads((tmp_path / "mend_checkpoint.json").read_text())
    assert marker["checkpoints"] == cached and marker["rows_moved_then"] == {"en": 2, "zh_fr": 0}

    # rows made afterwards with the same checkpoint stay, also in a later sitting
    with open(en / "results.shard0of2.jsonl", "a", encoding="utf-8") as fh:
        fh.write(_line("mend", 1))
    assert mend_rows.main(["en", "zh_fr", "--root", str(tmp_path)]) == 0
    assert "nothing moved" in capsys.readouterr().out
    assert _line("mend", 1) in (en / "results.shard0of2.jsonl").read_text()

    # a new checkpoint (a fresh machine trained MEND again): they move too
    cached["ckpt-a"] = "bbb"
    assert mend_rows.main(["en", "zh_fr", "--root", str(tmp_path)]) == 0
    assert "mend" not in (en / "results.shard0of2.jsonl").read_text()
    assert (en / mend_rows.ARCHIVE).read_text().count('"method": "mend"') == 3


def test_without_a_checkpoint_nothing_moves(mend_rows, tmp_path, monkeypatch, capsys):
    files = _series(tmp_path)
    monkeypatch.setattr(mend_rows, "current_checkpoints", dict)
    assert mend_rows.main(["en", "--root", str(tmp_path)]) == 2
    assert "prepare step" in capsys.readouterr().err
    assert all((tmp_path / name).read_text() == text for name, text in files.items())
