"""memla-edit on a tiny local model: record and command-line facts, table, JSON, one-line errors."""
from __future__ import annotations

import json

import pytest
import yaml

from memla_plugin.cli import edit as cli
from memla_plugin.hparams import MKEB_LANGS


@pytest.fixture
def tiny_setup(tmp_path, qwen2_model, tiny_tok):
    """A tiny Qwen2 saved as a local model dir and a quick hparams file pointing at it."""
    model_dir = tmp_path / "tiny-qwen2"
    qwen2_model.save_pretrained(model_dir)
    tiny_tok.save_pretrained(model_dir)
    hp = yaml.safe_load(cli.find_hparams_file().read_text())
    hp.update(model_name=str(model_dir), attr_steps=4, lr=0.05, max_steps=40)
    hp_path = tmp_path / "tiny.yaml"
    hp_path.write_text(yaml.safe_dump(hp))
    return {"model_dir": model_dir, "hparams": str(hp_path), "tmp": tmp_path}


def test_default_hparams_file_is_found_and_selects_the_default_model():
    path = cli.find_hparams_file()
    assert path is not None and path.name == "qwen2.5-0.5b.yaml"
    hparams, source = cli.load_hparams(None)
    assert hparams.model_name == "default" and source == str(path)


def test_record_edit_prints_all_12_languages(tiny_setup, capsys):
    out_json = tiny_setup["tmp"] / "res.json"
    args = cli.build_parser().parse_args(
        ["--record", "4482", "--lang", "en", "--hparams", tiny_setup["hparams"], "--json", str(out_json)]
    )
    result = cli.run(args)
    captured = capsys.readouterr()
    table = captured.out
    rows = [line for line in table.splitlines() if line[:4].strip() in MKEB_LANGS]
    assert [r[:4].strip() for r in rows] == list(MKEB_LANGS)
    assert "Where does Spike Hughes originate from?" in table and "London -> Philadelphia" in table
    # progress went to stderr: model load, attribution per language, the edit summary
    assert "loading model" in captured.err and "attribution en (1/3)" in captured.err and "edit done" in captured.err
    assert set(result["before"]) == set(MKEB_LANGS) == set(result["after"])
    en_b, en_a = result["before"]["en"], result["after"]["en"]
    assert en_a["p_new"] / en_a["p_true"] > en_b["p_new"] / en_b["p_true"]  # the edit moved the English fact
    saved = json.loads(out_json.read_text())
    assert saved["request"]["case_id"] == 4482 and saved["edit_stats"]["steps"] >= 1


def test_command_line_fact_with_one_translation(tiny_setup, capsys):
    rc = cli.main([
        "--hparams", tiny_setup["hparams"],
        "--prompt", "The capital of {} is", "--subject", "France",
        "--target-new", "Rome", "--target-true", "Paris",
        "--also", "fr", "La capitale de la France est", "Paris", "Rome",
        "--langs", "en,fr,de",
    ])
    assert rc == 0
    out = capsys.readouterr().out
    assert "'The capital of France is': Paris -> Rome" in out
    lines = {line[:4].strip(): line for line in out.splitlines() if line[:4].strip() in ("en", "fr", "de")}
    assert "(no prompt in this language)" in lines["de"]
    assert "(no prompt" not in lines["en"] and "(no prompt" not in lines["fr"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--record", "4482", "--prompt", "x"], "not both"),
        (["--prompt", "The capital of France is", "--target-new", "Rome"], "--target-true is required"),
        (["--record", "999999999"], "999999999"),
        (["--record", "4482", "--langs", "en,xx"], "xx"),
    ],
)
def test_errors_are_one_line(tiny_setup, capsys, argv, message):
    assert cli.main(argv + ["--hparams", tiny_setup["hparams"]]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("memla-edit: error:")]
    assert len(err) == 1 and message in err[0]


def test_render_answer_stops_at_end_of_turn_and_first_line(tiny_tok):
    eos = tiny_tok.eos_token_id
    assert cli.render_answer(tiny_tok, [eos, 5, 6]) == tiny_tok.eos_token
    ids = tiny_tok(" Paris\nRome", add_special_tokens=False)["input_ids"]
    assert cli.render_answer(tiny_tok, ids + [eos]) == "Paris"


def test_render_answer_stops_at_chat_end_marker(tiny_tok):
    """Qwen's <|im_end|> is an added special token that is not in all_special_ids."""
    import copy

    from tokenizers import AddedToken

    tok = copy.deepcopy(tiny_tok)
    tok.add_tokens([AddedToken("<|im_end|>", special=True)])
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end not in tok.all_special_ids
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    paris = tok(" Paris", add_special_tokens=False)["input_ids"]
    assert cli.render_answer(tok, [im_end] + newline + paris) == "<|im_end|>"
    assert cli.render_answer(tok, paris + [im_end] + newline + paris) == "Paris"


def test_attribution_progress_hook_is_removed(tiny_setup):
    import memla_plugin.neurons as neurons

    before = "find_neurons" in vars(neurons)
    with cli.attribution_progress():
        assert "find_neurons" in vars(neurons)
    assert ("find_neurons" in vars(neurons)) == before


def test_attribution_progress_labels_and_ticks(monkeypatch, capsys):
    import time
    from types import SimpleNamespace

    import memla_plugin.neurons as neurons

    def slow_find(model, tok, prompts, target, arch, hparams):
        time.sleep(0.35)
        return {(0, 1), (2, 3)}

    monkeypatch.setattr(neurons, "find_neurons", slow_find)
    arch, hp = SimpleNamespace(num_layers=24), SimpleNamespace(attr_steps=20)
    hp.max_steps = 60
    with cli.attribution_progress(["en", "zh"], tick_s=0.1):
        assert neurons.find_neurons(None, None, ["q"], "London", arch, hp) == {(0, 1), (2, 3)}
        neurons.find_neurons(None, None, ["q"], "伦敦", arch, hp)
        time.sleep(0.35)  # the training phase that follows the last attribution
    err = capsys.readouterr().err
    assert "attribution en (1/2): 1 prompt(s), target 'London'" in err
    assert "attribution en (1/2) still running" in err
    assert "attribution en (1/2) done" in err and "2 neurons" in err
    assert "attribution zh (2/2) done" in err
    assert "training the masked dual LoRA (at most 60 steps)" in err and "training still running" in err
    assert neurons.find_neurons is slow_find
