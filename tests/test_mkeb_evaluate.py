"""The unedited-model table command, with the model loader replaced by a tiny model."""
from __future__ import annotations

import json

import torch
from conftest_mkeb import mkeb_record


def test_evaluate_prints_per_language_table(tmp_path, capsys, monkeypatch, make_tiny_model, tiny_tok):
    import memla_plugin.models as models
    from memla_plugin.mkeb.evaluate import main

    data = tmp_path / "mkeb.json"
    data.write_text(json.dumps([mkeb_record(1, langs=("en", "fr")), mkeb_record(2, langs=("en", "fr"))]))
    model = make_tiny_model("qwen2")
    monkeypatch.setattr(models, "load_model", lambda *a, **k: (model, tiny_tok))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["--data", str(data), "--ids", "all", "--langs", "en", "fr", "--json", str(tmp_path / "out.json"),
                   "--prompt-template", "Q: {}\\nA:"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["lang", "ES", "PS", "NS", "MQ"]
    assert [ln.split()[0] for ln in lines[3:5]] == ["en", "fr"] and lines[-1].startswith("mean")
    out = json.loads((tmp_path / "out.json").read_text())
    assert len(out["records"]) == 2 and out["records"][0]["scores"]["en"]["loc_acc"] == 1.0


def test_evaluate_bad_ids_one_line_error(tmp_path, capsys):
    from memla_plugin.mkeb.evaluate import main

    data = tmp_path / "mkeb.json"
    data.write_text(json.dumps([mkeb_record(1)]))
    assert main(["--data", str(data), "--ids", str(tmp_path / "nope.txt"), "--langs", "en", "zh"]) == 2
    assert "cannot read" in capsys.readouterr().err
