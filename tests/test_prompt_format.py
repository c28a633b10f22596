"""The prompt format: one template per format, and the same one reaching attribution, MEMLA training,
the EasyEdit editors' requests and scoring (memla_plugin/prompt_format.py)."""
from __future__ import annotations

import copy

import pytest
from conftest_bench import bench_env, bench_model_dir  # noqa: F401

from memla_plugin.prompt_format import (
    PREAMBLE,
    PromptFormatError,
    check_prompt_format,
    format_prompt,
    prompt_template,
    with_context,
)

CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QUESTION = "The capital of France is"


@pytest.fixture
def chat_tok(tiny_tok):
    """The tiny tokenizer with a ChatML-style chat template (a copy: the session's stays bare)."""
    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = CHAT
    return tok


def test_templates_of_each_format(chat_tok):
    assert prompt_template(chat_tok, "bare") == "{}"
    assert format_prompt(chat_tok, QUESTION, "bare") == QUESTION
    assert format_prompt(chat_tok, QUESTION, "preamble") == PREAMBLE.replace("{}", QUESTION)
    chat = format_prompt(chat_tok, QUESTION, "chat")
    assert chat == f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    assert chat == chat_tok.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                                add_generation_prompt=True)
    # a question that is itself a template keeps its slot for the subject
    assert format_prompt(chat_tok, "{} was born in", "chat").count("{}") == 1


def test_chat_without_template_and_unknown_format_are_named(tiny_tok):
    with pytest.raises(PromptFormatError, match="has none; use prompt_format=bare or preamble"):
        prompt_template(tiny_tok, "chat")
    with pytest.raises(PromptFormatError, match=r"prompt_format='fancy' unknown; use bare, preamble or chat"):
        check_prompt_format("fancy")
    with pytest.raises(PromptFormatError, match="contains"):
        with_context("{}", "demo {} demo")
    assert with_context("Q: {}\nA:", "New Fact: x y\nPrompt: ") == "Q: New Fact: x y\nPrompt: {}\nA:"


def test_template_bos_is_not_doubled():
    """A template that writes BOS for a tokenizer that adds BOS itself: tokenising the filled
    template gives the ids apply_chat_template(tokenize=True) gives."""
    from conftest_mkeb import byte_level_tok

    tok = byte_level_tok(bos=True)
    tok.chat_template = tok.bos_token + CHAT
    text = format_prompt(tok, QUESTION, "chat")
    assert not text.startswith(tok.bos_token)
    want = tok.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert list(tok(text)["input_ids"]) == list(want)


def test_memla_attribution_and_training_see_the_format(chat_tok, qwen2_model, fact_request, monkeypatch):
    """apply_memla_to_model with prompt_format=chat: every prompt attribution scores and the prompt
    training encodes are the chat-formatted ones."""
    import memla_plugin.neurons.selection as selection
    import memla_plugin.training as training
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import apply_memla_to_model

    seen_attr, seen_train = [], []
    real_attr, real_encode = selection.encode_fact, training.encode_edit  # every attributed prompt is tokenised there
    monkeypatch.setattr(selection, "encode_fact", lambda t, p, *a, **k: seen_attr.append(p) or real_attr(t, p, *a, **k))
    monkeypatch.setattr(training, "encode_edit", lambda t, p, *a, **k: seen_train.append(p) or real_encode(t, p, *a, **k))
    hp = MEMLAHyperParams(attr_steps=2, max_steps=2, attr_threshold=0.0, prompt_format="chat")
    apply_memla_to_model(qwen2_model, chat_tok, [fact_request], hp, return_orig_weights=True)
    assert seen_attr and seen_train
    assert all(p.startswith("<|im_start|>user\n") and p.endswith("<|im_start|>assistant\n") for p in seen_attr)
    assert format_prompt(chat_tok, fact_request["prompt"], "chat") in seen_attr
    assert seen_train == [format_prompt(chat_tok, fact_request["prompt"], "chat")]


def test_neuron_cache_key_names_the_format():
    from memla_plugin.neurons.settings import AttributionSettings

    bare, chat = AttributionSettings(), AttributionSettings(prompt_format="chat")
    assert bare.cache_key("m") == AttributionSettings().cache_key("m") and not bare.cache_key("m").endswith("bare")
    assert chat.cache_key("m") == bare.cache_key("m") + "-chat"


@pytest.mark.parametrize("alg", ["ROME", "MEMIT", "FT-L", "FT-M", "LoRA", "MEND"])
def test_each_easyedit_editor_gets_formatted_requests(alg, chat_tok, fact_request):
    """The harness's host editors hand the host a copy of the request in the run's format."""
    from memla_mkeb.methods import EasyEditEditor
    from memla_mkeb.settings import MethodSpec

    seen = []
    editor = EasyEditEditor.__new__(EasyEditEditor)  # no host import: the apply function is a stand-in
    editor.spec, editor.prompt_format, editor.hparams = MethodSpec(alg.lower(), "easyedit", alg), "chat", None
    editor.apply_fn = lambda model, tok, requests, hp, **kw: seen.append(requests[0]) or (model, {})
    editor.edit(object(), chat_tok, fact_request)
    (req,) = seen
    assert req["prompt"] == format_prompt(chat_tok, fact_request["prompt"], "chat")
    assert req["rephrase_prompt"] == format_prompt(chat_tok, fact_request["rephrase_prompt"], "chat")
    assert req["subject"] in req["prompt"] and fact_request["prompt"] == "The capital of France is"  # a copy


def test_harness_preamble_reaches_attribution_training_and_scoring(bench_env, monkeypatch):
    """One run with prompt_format=preamble: MEMLA's attribution and training and every scored prompt
    are in the preamble; the rows say so and the run's identity differs from bare."""
    import memla_plugin.mkeb.scoring as scoring
    import memla_plugin.neurons.selection as selection
    import memla_plugin.training as training
    from conftest_bench import compose, read_rows
    from memla_mkeb.planning import plan_run
    from memla_mkeb.runner import run_benchmark

    seen: dict[str, list[str]] = {"attr": [], "train": [], "score": []}
    real_attr, real_encode, real_prompt = selection.encode_fact, training.encode_edit, scoring.encode_prompt
    monkeypatch.setattr(selection, "encode_fact", lambda t, p, *a, **k: seen["attr"].append(p) or real_attr(t, p, *a, **k))
    monkeypatch.setattr(training, "encode_edit", lambda t, p, *a, **k: seen["train"].append(p) or real_encode(t, p, *a, **k))
    monkeypatch.setattr(scoring, "encode_prompt", lambda t, text: seen["score"].append(text) or real_prompt(t, text))
    cfg = compose(bench_env.overrides("data.limit=1", "prompt_format=preamble"))
    run_benchmark(cfg)
    head, tail = PREAMBLE.split("{}")
    for where, prompts in seen.items():
        assert prompts, where
        assert all(p.startswith(head) and p.endswith(tail) for p in prompts), where
    rows = read_rows(bench_env.run_dir)
    assert {r["prompt_format"] for r in rows} == {"preamble"} and {r["method"] for r in rows} == {"unedited", "memla"}
    bare = plan_run(compose(bench_env.overrides("data.limit=1", "prompt_format=bare")))
    pre = plan_run(cfg)
    assert "prompt_format" not in bare.settings["base"] and pre.settings["base"]["prompt_format"] == "preamble"
    assert bare.base_id != pre.base_id


def test_bad_prompt_format_setting_is_one_line(bench_env):
    from conftest_bench import compose
    from memla_mkeb.planning import plan_run
    from memla_mkeb.settings import BenchConfigError

    with pytest.raises(BenchConfigError, match=r"^prompt_format='xml' unknown; use bare, preamble or chat$"):
        plan_run(compose(bench_env.overrides("prompt_format=xml")))


def test_true_acc_is_token_accuracy_of_the_pre_edit_answer():
    """true_acc (what the format rule reads): argmax after "?" is A, after "!" is A; hand-checked on the stub."""
    from conftest_mkeb import BigramStub, word_tok

    from memla_plugin.mkeb import score_record
    from memla_plugin.mkeb.loader import record_from_json

    probs = {"?": {"A": 0.5, "C": 0.3}, "!": {"A": 0.8, "C": 0.1}, "A": {"B": 0.5, "D": 0.2}}
    rec = record_from_json({
        "example_id": 1,
        "edit": {"en": {"prompt": "{} ?", "subject": "Q", "target_new": "C", "target_true": "A B"},
                 "de": {"prompt": "{} !", "subject": "Q", "target_new": "A", "target_true": "C"},
                 "zh": {"prompt": "{} !", "subject": "Q", "target_new": "A", "target_true": None}},
        "paraphrase_prompts": {}, "neighborhood_prompts": {}, "neighborhood_answers": {},
    })
    scores = score_record(BigramStub(probs), word_tok(), rec, ["en", "de", "zh"], device="cpu")
    assert scores["en"]["true_acc"] == pytest.approx(1.0)  # A after "?", B after A: both argmax
    assert scores["de"]["true_acc"] == pytest.approx(0.0)  # C after "!": argmax is A
    assert scores["zh"]["true_acc"] is None  # no pre-edit answer


def _format_run(root, fmt: str, values: dict[str, tuple[float, float, float]]):
    """A run dir holding the unedited model (method unedited_<fmt>) under ``fmt``: record -> (true_acc, NS, MQ) in en and de."""
    import json

    run = root / fmt
    run.mkdir()
    rows = []
    for i, (rid, (t, ns, mq)) in enumerate(values.items()):
        sc = {"true_acc": t, "NS": ns, "MQ": mq, "ES": 0.0, "PS": 0.0, "rel_acc": 0.0, "gen_acc": 0.0,
              "loc_acc": 1.0, "port_acc": 0.0}
        rows.append({"cfg_id": f"cfg-{fmt}", "edit_s": 0.0, "edit_stats": {}, "error": None, "eval_s": 0.0,
                     "hardware": "CPU: test", "key": f"unedited_{fmt}|en|{rid}", "kind": "unedited",
                     "method": f"unedited_{fmt}", "record_id": rid, "record_index": i,
                     "restore": {"checked": 0, "restored": 0}, "scores": {"en": sc, "de": dict(sc, NS=ns / 2)},
                     "seed": 42, "shard": "0/1", "source": "en", "status": "ok", "prompt_format": fmt})
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return run


def test_report_shows_each_format_and_the_rules_choice(tmp_path):
    """Hand-checked: visibility = mean over records of (true_acc + NS averaged over en/de) / 2; the
    simplest format within 1 point of the best wins; only common records are compared."""
    from memla_mkeb.format_sections import choose_format
    from memla_mkeb.report import write_report

    runs = [_format_run(tmp_path, "bare", {"1": (0.2, 0.0, 0.0), "2": (0.4, 0.0, 0.0)}),
            _format_run(tmp_path, "preamble", {"1": (0.4, 0.4, 0.2), "2": (0.6, 0.4, 0.0), "3": (1.0, 1.0, 1.0)}),
            _format_run(tmp_path, "chat", {"1": (0.5, 0.4, 0.0), "2": (0.5, 0.4, 0.0)})]
    md = write_report(runs, tmp_path / "r.md", n_boot=200, seed=0).read_text(encoding="utf-8")
    sec = md[md.index("## Prompt format"):].split("\n## ")[0]
    # NS over en/de = (ns + ns/2)/2 = 0.75 ns; visibility bare (0.3 + 0)/2 = 15.0; preamble (0.5 + 0.3)/2 = 40.0;
    # chat (0.5 + 0.3)/2 = 40.0: a tie within 1 point, so the simpler preamble is chosen; record 3 left out
    assert "| bare | 2 | 30.0 [20.0, 40.0] | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | 15.0 [10.0, 20.0] |  |" in sec
    assert "| preamble | 2 | 50.0 [40.0, 60.0] | 30.0 [30.0, 30.0] | 10.0 [0.0, 20.0] | 40.0 [35.0, 45.0] | **chosen** |" in sec
    assert "| chat | 2 | 50.0 [50.0, 50.0] | 30.0 [30.0, 30.0] |" in sec and "1 more under preamble left out" in sec
    assert choose_format({"bare": 0.15, "preamble": 0.40, "chat": 0.415}) == "chat"
    assert choose_format({"bare": 0.405, "preamble": 0.40, "chat": 0.41}) == "bare"
    assert choose_format({"bare": None, "chat": None}) is None
