"""IKE as a baseline: EasyEdit's retrieval with the packaged encoder, demonstrations from the train split
only, and its context before every question the harness scores (memla_plugin/easyedit/ike.py,
benchmarks/mkeb/memla_mkeb/ike_editor.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest_bench import bench_env, bench_model_dir, compose, read_rows  # noqa: F401

from memla_plugin.easyedit import ike
from memla_plugin.mkeb.loader import load_mkeb

TINY_IKE = """alg_name: "IKE"
model_name: "{model}"
sentence_model_name: "default"
device: "cpu"
results_dir: "default"
k: 2
use_icl_examples: true
model_parallel: false
"""


def test_encoder_is_checked_file_by_file(monkeypatch):
    path = ike.encoder_dir(verify=True)
    assert (path / "model.safetensors").is_file() and ike.resolve_encoder("default") == str(path)
    assert ike.resolve_encoder("/my/encoder") == "/my/encoder"
    monkeypatch.setitem(ike.ENCODER_SHA256, "vocab.txt", "0" * 64)
    with pytest.raises(ike.IKEError, match=r"vocab.txt has sha256 .* expected 000000000000\.\.\.; reinstall"):
        ike.encoder_dir(verify=True)


def test_setup_step_verifies_without_pip_when_installed(monkeypatch):
    from memla_plugin import setup_env

    monkeypatch.setattr(setup_env.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert setup_env.prepare_ike_encoder() == ike.encoder_dir()


def test_pool_never_holds_an_evaluated_record():
    train = load_mkeb(None, "train")[:6]
    evaluated = [str(train[1].example_id), str(train[4].example_id)]
    facts = ike.train_facts(train, "en", exclude_ids=evaluated)
    assert [f["case_id"] for f in facts] == [str(r.example_id) for r in train if str(r.example_id) not in evaluated]
    assert facts[0]["prompt"] == train[0].fact("en").question and "locality_prompt" in facts[0]
    with pytest.raises(ike.IKEError, match="no demonstration pool"):
        ike.prepare_pool(object(), [], Path("."), "k")


def test_ike_through_the_harness(bench_env, tmp_path, monkeypatch):
    """One train record evaluated with IKE on the tiny model: the record is left out of the pool, the
    k demonstrations and the new fact precede every scored prompt, and the weights never change."""
    import memla_plugin.easyedit.paths as paths
    import memla_plugin.mkeb.loader as loader
    import memla_plugin.mkeb.scoring as scoring

    train = load_mkeb(None, "train")[:5]
    target = train[2]
    real_load = loader.load_mkeb
    monkeypatch.setattr(loader, "load_mkeb", lambda path, ids=None, **kw: train if ids == "train" else real_load(path, ids, **kw))
    monkeypatch.setattr(paths, "ike_dir", lambda: tmp_path / "ike")
    scored: list[str] = []
    real_prompt = scoring.encode_prompt
    monkeypatch.setattr(scoring, "encode_prompt", lambda t, text: scored.append(text) or real_prompt(t, text))
    (bench_env.hparams_dir / "IKE").mkdir()
    (bench_env.hparams_dir / "IKE" / "tiny.yaml").write_text(TINY_IKE.format(model=bench_env.model_dir))
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{target.example_id}\n")
    from memla_mkeb.runner import run_benchmark

    cfg = compose(bench_env.overrides("data.path=default", f"data.ids={ids}", "methods=[unedited,ike]",
                                      "eval_langs=[en]", "prompt_format=bare"))
    run_benchmark(cfg)
    rows = {r["method"]: r for r in read_rows(bench_env.run_dir)}
    row = rows["ike"]
    assert row["status"] == "ok" and row["restore"]["checked"] > 0
    stats = row["edit_stats"]
    demos = stats["demonstrations"]
    assert stats["n_demos"] == len(demos) == 2 and stats["context_tokens"] > 0
    question = target.fact("en").question
    assert not any(question in d for d in demos)  # the evaluated record is never a demonstration
    assert all(any(f["prompt"] in d for f in ike.train_facts(train, "en")) for d in demos)
    context = "".join(demos) + f"New Fact: {question} {target.fact('en').target_new}\nPrompt: "
    with_ctx = [t for t in scored if t.startswith(context)]
    assert context + question in with_ctx and len(with_ctx) >= 2  # the edit question and the other prompts
    assert rows["unedited"]["scores"]["en"]["loc_acc"] == 1.0 and row["scores"]["en"]["loc_acc"] is not None
    pools = list((tmp_path / "ike").iterdir())
    assert len(pools) == 1 and pools[0].name.startswith("en-")
    assert json.loads((bench_env.run_dir / "plan.json").read_text())["selected_ids"] == [str(target.example_id)]


def test_new_fact_states_the_target_as_it_is_scored():
    """en keeps EasyEdit's space between prompt and target; zh/ja/th join them as the scorer does."""
    from memla_plugin.easyedit.ike import ike_context, new_fact_line
    from memla_plugin.tokenisation import target_with_space

    en = {"prompt": "The capital of France is", "target_new": "Rome", "edit_lang": "en"}
    zh = {"prompt": "法国的首都是", "target_new": "罗马", "edit_lang": "zh"}
    assert new_fact_line(en) == "New Fact: The capital of France is Rome\n"  # EasyEdit's own form
    assert new_fact_line(zh) == "New Fact: 法国的首都是罗马\n"
    for req in (en, zh):  # the stated fact ends with exactly the text the scorer appends to the prompt
        assert new_fact_line(req) == f"New Fact: {req['prompt']}{target_with_space(req['target_new'], req['edit_lang'])}\n"
    assert ike_context(["demo\n"], zh) == "demo\nNew Fact: 法国的首都是罗马\nPrompt: "
