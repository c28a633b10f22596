"""benchmarks/mkeb/results/move_rows.py: rows measured wrongly leave the files the harness reads, kept aside.

One method's rows made with one commit move into the archive, in their order and byte for byte; rows of
other methods or made with other code stay, as does a torn last line; a second call moves nothing; a
file whose shard a sitting holds is refused and left as it was.
"""
from __future__ import annotations

import json

import pytest

OLD, NEW = "e14d6492494d70256ec62bd21a4fe359c094af46", "4b808d1fd6c1b8e3a0d5f2c4b7e9a1c3d5f7b9e1"


@pytest.fixture
def move_rows(results_script):
    return results_script("move_rows.py")


def _line(method: str, record: int, commit: str = OLD) -> str:
    return json.dumps({"key": f"{method}|en|{record}", "method": method, "record_id": str(record),
                       "code": {"commit": commit, "dirty": False}}) + "\n"


def test_one_methods_rows_of_one_commit_move_aside_once(move_rows, tmp_path, capsys):
    run = tmp_path / "ppl1"
    run.mkdir()
    shard0 = run / "results.shard0of2.jsonl"
    shard0.write_text(_line("unedited", 1) + _line("lora", 1) + _line("rome", 1) + _line("lora", 3, NEW)
                      + _line("lora", 5) + '{"key": "torn', encoding="utf-8")
    seqs = run / "sequences.jsonl"
    seqs.write_text(_line("ike", 1) + _line("lora", 1), encoding="utf-8")
    args = ["--method", "lora", "--made-with", OLD[:7], "--archive", "lora_old.jsonl", str(shard0), str(seqs)]
    assert move_rows.main(args) == 0
    assert shard0.read_text() == _line("unedited", 1) + _line("rome", 1) + _line("lora", 3, NEW) + '{"key": "torn'
    assert seqs.read_text() == _line("ike", 1)
    assert (run / "lora_old.jsonl").read_text() == _line("lora", 1) + _line("lora", 5) + _line("lora", 1)
    assert "2 lora row(s)" in capsys.readouterr().out
    before = {p.name: p.read_text() for p in run.iterdir() if p.is_file()}
    assert move_rows.main(args) == 0  # nothing left to move: every file as it was
    assert {p.name: p.read_text() for p in run.iterdir() if p.is_file()} == before
    assert "0 lora row(s)" in capsys.readouterr().out


def test_a_file_in_use_by_a_sitting_is_refused_untouched(move_rows, tmp_path, capsys):
    from memla_mkeb import store

    run = tmp_path / "seq10"
    run.mkdir()
    path = run / "sequences.shard1of2.jsonl"
    text = _line("lora", 1) + _line("memla", 1)
    path.write_text(text, encoding="utf-8")
    args = ["--method", "lora", "--made-with", OLD[:7], "--archive", "old.jsonl", str(path)]
    with store.run_lock(run, ".shard1of2"):  # what a harness sitting on that shard holds
        assert move_rows.main(args) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "in use" in err
    assert path.read_text() == text and not (run / "old.jsonl").exists()
    assert move_rows.main(args) == 0 and path.read_text() == _line("memla", 1)  # the sitting ended


def test_names_that_would_mix_rows_are_refused(move_rows, tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(_line("lora", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="read as rows"):
        move_rows.move_rows(path, move_rows.made_with("lora", OLD), tmp_path / "results_old.jsonl")
    with pytest.raises(ValueError, match="not a results, sequences or batches file"):
        move_rows.shard_tag(tmp_path / "unedited_cache.jsonl")
    with pytest.raises(SystemExit):
        move_rows.main(["--method", "lora", "--made-with", "HEAD", "--archive", "a.jsonl", str(path)])
    assert path.read_text() == _line("lora", 1)
