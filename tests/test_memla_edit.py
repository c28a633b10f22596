"""MEMLA edits end to end on tiny random GPT-2 (Conv1D) and Qwen2 (nn.Linear) models.

Most tests fix the neurons (monkeypatching the attribution call) so that the sets, and
hence what may change, are known exactly; ``test_real_pipeline_end_to_end`` runs the
real attribution.
"""
from __future__ import annotations

import copy
import json
import logging

import pytest
import torch
from torch import nn

from memla_plugin import memla_main
from memla_plugin.errors import (
    EmptyTargetError,
    NaNLossError,
    NoNeuronsError,
    UnknownArchitectureError,
)
from memla_plugin.hparams import MEMLAHyperParams
from memla_plugin.masked_lora import MaskedLoRAConfig, MaskedLoRAModel
from memla_plugin.memla_main import apply_memla_to_model, execute_memla, last_edit_report
from memla_plugin.training import encode_edit, target_ids, target_logprobs, target_with_space, train_masked_lora

EDIT_TMP = {"gpt2": "transformer.h.{}.mlp.c_proj", "qwen2": "model.layers.{}.mlp.down_proj"}

# neurons per language, keyed by the language's edit prompt (see conftest.fact_request)
FIXED = {
    "en": {(1, 3), (1, 5), (2, 7), (2, 11)},
    "zh": {(1, 3), (2, 7), (2, 9), (0, 4)},
    "fr": {(1, 3), (2, 7), (1, 20)},
}
LIKN = {1: [3], 2: [7]}
LSKN = {1: [5], 2: [11]}


def hp(**kw) -> MEMLAHyperParams:
    """Paper defaults except a learning rate that moves tiny random models within 60 steps."""
    kw.setdefault("lr", 0.05)
    return MEMLAHyperParams(**kw)


@pytest.fixture
def fixed_neurons(monkeypatch, fact_request):
    """Replace attribution with the FIXED sets; records every call."""
    by_prompt = {fact_request["languages"][lang]["prompt"]: lang for lang in FIXED}
    calls = []

    def fake(model, tok, prompts, target, arch, hparams):
        calls.append((list(prompts), target))
        return set(FIXED.get(by_prompt.get(prompts[0]), set()))

    monkeypatch.setattr(memla_main, "_find_neurons", fake)
    return calls


def kind_of(model) -> str:
    return model.config.model_type


def probs(model, tok, prompt="The capital of France is", new="Rome", true="Paris", lang="en"):
    batch = encode_edit(tok, prompt, new, true, lang, torch.device("cpu"))
    with torch.no_grad():
        lp_new, lp_true = target_logprobs(model, batch)
    return float(lp_new.exp()), float(lp_true.exp())


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bit_identical(model, snap, skip=()):
    for k, v in model.state_dict().items():
        if k not in skip:
            assert torch.equal(v, snap[k]), f"{k} changed"


def changed_neurons(model, snap, layer: int) -> list[int]:
    """Neuron indices whose down-projection slice changed (rows for Conv1D, columns for Linear)."""
    name = EDIT_TMP[kind_of(model)].format(layer) + ".weight"
    diff = model.state_dict()[name] != snap[name]
    axis = 1 if kind_of(model) == "qwen2" else 0
    return diff.any(dim=1 - axis).nonzero().flatten().tolist()


def no_hooks_left(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ----------------------------------------------------------------------------- what changes
def test_only_selected_neurons_change_and_restore_is_bit_exact(tiny_model, tiny_tok, fact_request, fixed_neurons):
    snap = snapshot(tiny_model)
    model, weights_copy = apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp(), return_orig_weights=True)
    assert model is tiny_model
    edited = [EDIT_TMP[kind_of(model)].format(l) + ".weight" for l in (1, 2)]
    assert sorted(weights_copy) == sorted(edited)
    assert_bit_identical(model, snap, skip=edited)
    assert changed_neurons(model, snap, 1) == [3, 5]
    assert changed_neurons(model, snap, 2) == [7, 11]
    for name, orig in weights_copy.items():
        assert torch.equal(orig, snap[name])
        model.get_parameter(name).data.copy_(orig)
    assert_bit_identical(model, snap)
    assert last_edit_report().n_likn == 2 and last_edit_report().n_lskn == 2
    assert last_edit_report().layers == [1, 2]
    assert last_edit_report().reused_lower_layers is True
    for key in ("attribution_s", "sets_s", "train_s", "merge_s", "total_s", "steps", "stopped_by", "p_new"):
        assert key in last_edit_report().as_dict()
    assert no_hooks_left(model)
    assert all(p.requires_grad for p in model.parameters())


def test_edit_makes_new_target_win(tiny_model, tiny_tok, fact_request, fixed_neurons):
    p_new0, p_true0 = probs(tiny_model, tiny_tok)
    apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp())
    p_new1, p_true1 = probs(tiny_model, tiny_tok)
    assert p_new1 > p_true1
    assert p_new1 > 10 * p_new0 and p_true1 < p_true0
    assert last_edit_report().final_loss < last_edit_report().initial_loss


def test_update_is_exactly_zero_before_training(tiny_model, tiny_tok, fact_request, fixed_neurons):
    snap = snapshot(tiny_model)
    updates, _ = execute_memla(tiny_model, tiny_tok, fact_request, hp(stop_loss=1e9))
    assert last_edit_report().steps == 0 and last_edit_report().stopped_by == "loss"
    assert updates and all(torch.count_nonzero(u) == 0 for u in updates.values())
    apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp(stop_loss=1e9))
    assert_bit_identical(tiny_model, snap)


def _gpt2_with_linear_down_proj(gpt2):
    """The same GPT-2 with every Conv1D c_proj of the MLP replaced by an nn.Linear holding W^T."""
    model = copy.deepcopy(gpt2)
    for block in model.transformer.h:
        conv = block.mlp.c_proj
        lin = nn.Linear(conv.weight.shape[0], conv.weight.shape[1])
        with torch.no_grad():
            lin.weight.copy_(conv.weight.t())
            lin.bias.copy_(conv.bias)
        block.mlp.c_proj = lin
    return model


def test_conv1d_and_linear_give_the_same_update(gpt2_model, tiny_tok, fact_request, fixed_neurons):
    lin_model = _gpt2_with_linear_down_proj(gpt2_model)
    h = hp(max_steps=15)
    upd_conv, _ = execute_memla(gpt2_model, tiny_tok, fact_request, h)
    loss_conv = list(last_edit_report().loss_trace)
    upd_lin, _ = execute_memla(lin_model, tiny_tok, fact_request, h)
    torch.testing.assert_close(last_edit_report().loss_trace, loss_conv, rtol=1e-5, atol=1e-5)
    assert sorted(upd_conv) == sorted(upd_lin)
    for name in upd_conv:
        assert upd_conv[name].shape == upd_lin[name].t().shape
        assert torch.count_nonzero(upd_conv[name]) > 0
        torch.testing.assert_close(upd_lin[name], upd_conv[name].t(), rtol=1e-3, atol=1e-5)


# ----------------------------------------------------------------------------- early stopping
def _trace(model, tok, request, **kw):
    execute_memla(model, tok, request, hp(**kw))
    return last_edit_report().as_dict()


def test_early_stopping_at_each_threshold(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    model = qwen2_model
    full = _trace(model, tiny_tok, fact_request, stop_loss=0.0, stop_prob=1.0, max_steps=25)
    assert full["stopped_by"] == "max_steps" and full["steps"] == 25
    assert len(full["loss_trace"]) == 26  # one evaluation before every step, one after the last

    # loss threshold crossed mid-way: training stops before the step that would follow
    losses = full["loss_trace"]
    k = 8
    thr = (losses[k - 1] + losses[k]) / 2 if losses[k] < losses[k - 1] else losses[k] * (1 + 1e-6)
    expect = next(j for j, v in enumerate(losses) if v < thr)
    got = _trace(model, tiny_tok, fact_request, stop_loss=thr, stop_prob=1.0, max_steps=25)
    assert got["stopped_by"] == "loss" and got["steps"] == expect > 0
    assert got["final_loss"] < thr <= min(got["loss_trace"][:-1])

    # probability threshold crossed mid-way
    pn = full["p_new_trace"]
    thr_p = (pn[k - 1] + pn[k]) / 2 if pn[k] > pn[k - 1] else pn[k] * (1 - 1e-6)
    expect_p = next(j for j, v in enumerate(pn) if v > thr_p)
    got = _trace(model, tiny_tok, fact_request, stop_loss=0.0, stop_prob=thr_p, max_steps=25)
    assert got["stopped_by"] == "prob" and got["steps"] == expect_p > 0
    assert got["p_new"] > thr_p >= max(got["p_new_trace"][:-1])

    # thresholds met before any step
    assert _trace(model, tiny_tok, fact_request, stop_loss=1e9)["steps"] == 0
    got = _trace(model, tiny_tok, fact_request, stop_loss=0.0, stop_prob=0.0)
    assert got["stopped_by"] == "prob" and got["steps"] == 0


# ----------------------------------------------------------------------------- ablations
@pytest.mark.parametrize(
    "switch, expect_layer1, expect_layer2",
    [
        ({}, [3, 5], [7, 11]),
        ({"use_language_specific": False}, [3], [7]),
        ({"use_language_independent": False}, [5], [11]),
        ({"use_masks": False}, "all", "all"),
    ],
)
def test_ablation_switches_change_what_is_trained(
    qwen2_model, tiny_tok, fact_request, fixed_neurons, switch, expect_layer1, expect_layer2
):
    snap = snapshot(qwen2_model)
    apply_memla_to_model(qwen2_model, tiny_tok, [fact_request], hp(max_steps=5, **switch))
    d_ff = qwen2_model.config.intermediate_size
    for layer, expect in ((1, expect_layer1), (2, expect_layer2)):
        got = changed_neurons(qwen2_model, snap, layer)
        assert got == (list(range(d_ff)) if expect == "all" else expect)
    n_s = 0 if switch.get("use_language_specific") is False else 2
    n_i = 0 if switch.get("use_language_independent") is False else 2
    assert last_edit_report().n_lskn_trained == n_s and last_edit_report().n_likn_trained == n_i
    assert last_edit_report().n_trainable == (n_s + n_i) * 4 * (d_ff + qwen2_model.config.hidden_size)


def test_apply_scale_scales_the_update(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    full, _ = execute_memla(qwen2_model, tiny_tok, fact_request, hp(max_steps=5, apply_scale=1.0))
    half, _ = execute_memla(qwen2_model, tiny_tok, fact_request, hp(max_steps=5, apply_scale=0.5))
    for name in full:
        torch.testing.assert_close(half[name], full[name] * 0.5)


# ----------------------------------------------------------------------------- lower-layer reuse
@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_reusing_lower_layers_gives_the_same_loss(make_tiny_model, tiny_tok, kind):
    model = make_tiny_model(kind)
    cfg = MaskedLoRAConfig(specific={1: [2, 9]}, independent={2: [4]})
    layers_before = list(model.get_submodule(EDIT_TMP[kind].split(".{}")[0]))
    results = []
    for reuse in (True, False):
        lora = MaskedLoRAModel(model, cfg, EDIT_TMP[kind], seed=3)
        res = train_masked_lora(
            model, tiny_tok, lora, "The capital of France is", "Rome", "Paris", "en",
            hp(max_steps=6, stop_loss=0.0), reuse_lower_layers=reuse,
        )
        results.append((res, lora.deltas()))
    (fast, d_fast), (slow, d_slow) = results
    assert fast.reused_lower_layers and not slow.reused_lower_layers
    torch.testing.assert_close(fast.losses, slow.losses, rtol=1e-6, atol=1e-6)
    for layer in d_fast:
        torch.testing.assert_close(d_fast[layer], d_slow[layer], rtol=1e-5, atol=1e-6)
    assert list(model.get_submodule(EDIT_TMP[kind].split(".{}")[0])) == layers_before
    assert no_hooks_left(model)


# ----------------------------------------------------------------------------- named errors
def test_empty_targets(tiny_model, tiny_tok, fact_request, fixed_neurons):
    snap = snapshot(tiny_model)
    for field, value in (("target_new", ""), ("target_new", "   "), ("ground_truth", "")):
        req = dict(fact_request, **{field: value})
        with pytest.raises(EmptyTargetError, match="case 7"):
            apply_memla_to_model(tiny_model, tiny_tok, [req], hp())
    assert_bit_identical(tiny_model, snap)


def test_target_that_tokenises_to_nothing():
    class NoTokens:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": []}

    with pytest.raises(EmptyTargetError, match="target_new"):
        target_ids(NoTokens(), " \u200b", what="target_new")


def test_unresolvable_module_templates(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    with pytest.raises(UnknownArchitectureError, match="edit_module_tmp"):
        apply_memla_to_model(qwen2_model, tiny_tok, [fact_request], hp(edit_module_tmp="model.layers.{}.mlp.nope"))

    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Cfg", (), {"model_type": "weird"})()
            self.blocks = nn.ModuleList([nn.Linear(2, 2)])

    with pytest.raises(UnknownArchitectureError, match="weird"):
        apply_memla_to_model(Weird(), tiny_tok, [fact_request], hp())


def test_no_neurons_anywhere(tiny_model, tiny_tok, fact_request, monkeypatch):
    monkeypatch.setattr(memla_main, "_find_neurons", lambda *a, **k: set())
    snap = snapshot(tiny_model)
    with pytest.raises(NoNeuronsError, match="no neurons"):
        apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp())
    assert_bit_identical(tiny_model, snap)


def test_nothing_left_to_train_after_ablation(tiny_model, tiny_tok, fact_request, monkeypatch):
    # every edit-language neuron is language-independent, and that editor is switched off
    monkeypatch.setattr(memla_main, "_find_neurons", lambda *a, **k: {(1, 3)})
    with pytest.raises(NoNeuronsError, match="use_language_independent=False"):
        apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp(use_language_independent=False))


def _assert_untouched(model, snap, layers):
    assert_bit_identical(model, snap)
    assert no_hooks_left(model)
    assert all(p.requires_grad for p in model.parameters())
    assert list(model.get_submodule(EDIT_TMP[kind_of(model)].split(".{}")[0])) == layers


def test_nan_loss_leaves_the_model_unchanged(tiny_model, tiny_tok, fact_request, fixed_neurons, monkeypatch):
    """The loss turns NaN after a few real training steps (the editors are non-zero by then)."""
    import memla_plugin.training as training

    real, calls = training.target_logprobs, []

    def nan_on_fourth(model, batch):
        calls.append(1)
        lp_new, lp_true = real(model, batch)
        return (lp_new * float("nan"), lp_true) if len(calls) == 4 else (lp_new, lp_true)

    monkeypatch.setattr(training, "target_logprobs", nan_on_fourth)
    snap = snapshot(tiny_model)
    layers = list(tiny_model.get_submodule(EDIT_TMP[kind_of(tiny_model)].split(".{}")[0]))
    with pytest.raises(NaNLossError, match="after 3 step"):
        apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp(stop_loss=0.0, stop_prob=1.0))
    _assert_untouched(tiny_model, snap, layers)


def test_diverging_training_raises_nan_loss(gpt2_model, tiny_tok, fact_request, fixed_neurons):
    """A learning rate that blows the activations up ends in a NaN loss, not a broken model."""
    snap = snapshot(gpt2_model)
    layers = list(gpt2_model.transformer.h)
    with pytest.raises(NaNLossError, match="unchanged"):
        apply_memla_to_model(gpt2_model, tiny_tok, [fact_request], hp(lr=1e30, stop_loss=0.0, stop_prob=1.0))
    _assert_untouched(gpt2_model, snap, layers)


def test_failure_in_a_later_request_undoes_earlier_ones(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    snap = snapshot(qwen2_model)
    bad = dict(fact_request, target_new="")
    with pytest.raises(EmptyTargetError):
        apply_memla_to_model(qwen2_model, tiny_tok, [fact_request, bad], hp(max_steps=5))
    assert_bit_identical(qwen2_model, snap)


# ----------------------------------------------------------------------------- languages
def test_missing_id_languages_edit_with_specific_editor_and_warn_once(
    qwen2_model, tiny_tok, fact_request, fixed_neurons, caplog
):
    req = {k: v for k, v in fact_request.items() if k != "languages"}
    snap = snapshot(qwen2_model)
    with caplog.at_level(logging.WARNING, logger="memla_plugin"):
        apply_memla_to_model(qwen2_model, tiny_tok, [req], hp(max_steps=5))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "language-specific editor alone" in warnings[0].getMessage()
    assert "zh" in warnings[0].getMessage() and "fr" in warnings[0].getMessage()
    assert last_edit_report().n_likn == 0 and last_edit_report().n_lskn == 4
    assert last_edit_report().missing_id_langs == ["zh", "fr"]
    assert changed_neurons(qwen2_model, snap, 1) == [3, 5]
    # the EasyEdit rephrase prompt joins the edit prompt for attribution
    assert fixed_neurons[-1][0] == [req["prompt"], req["rephrase_prompt"]]
    assert fixed_neurons[-1][1] == "Paris"


def test_one_missing_id_language_intersects_over_the_others(qwen2_model, tiny_tok, fact_request, fixed_neurons, caplog):
    req = copy.deepcopy(fact_request)
    del req["languages"]["zh"]
    with caplog.at_level(logging.WARNING, logger="memla_plugin"):
        execute_memla(qwen2_model, tiny_tok, req, hp(max_steps=2))
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    # en & fr share (1,3), (2,7); (1,5) and (2,11) are en-only
    assert last_edit_report().n_likn == 2 and last_edit_report().n_lskn == 2


def test_attribution_inputs_per_language(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    execute_memla(qwen2_model, tiny_tok, fact_request, hp(max_steps=1))
    langs = fact_request["languages"]
    assert fixed_neurons == [
        ([langs["en"]["prompt"]] + langs["en"]["paraphrases"], "Paris"),
        ([langs["zh"]["prompt"]], "巴黎"),
        ([langs["fr"]["prompt"]], "Paris"),
    ]


def test_edit_in_chinese_uses_no_leading_space(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    zh = fact_request["languages"]["zh"]
    req = dict(fact_request, edit_lang="zh", prompt=zh["prompt"], target_new=zh["target_new"],
               ground_truth=zh["target_true"], rephrase_prompt=None)
    p0 = probs(qwen2_model, tiny_tok, zh["prompt"], "罗马", "巴黎", "zh")
    apply_memla_to_model(qwen2_model, tiny_tok, [req], hp())
    p1 = probs(qwen2_model, tiny_tok, zh["prompt"], "罗马", "巴黎", "zh")
    assert p1[0] > p1[1] and p1[0] > p0[0]
    assert last_edit_report().edit_lang == "zh"


def test_target_with_space_rules(tiny_tok):
    assert target_with_space("Paris", "en", tiny_tok) == " Paris"
    assert target_with_space("Paris", "fr") == " Paris"
    assert target_with_space(" Paris", "en", tiny_tok) == " Paris"
    for lang in ("zh", "ja", "th"):
        assert target_with_space("巴黎", lang, tiny_tok) == "巴黎"

    class SentencePieceLike:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [5]}

        def convert_ids_to_tokens(self, ids):
            return ["\u2581x"]

    assert target_with_space("Paris", "en", SentencePieceLike()) == "Paris"
    # targets are tokenised without special tokens (no BOS/EOS inside a target)
    assert target_ids(tiny_tok, " Paris") == tiny_tok(" Paris", add_special_tokens=False)["input_ids"]


# ----------------------------------------------------------------------------- EasyEdit contract
def test_copy_true_leaves_the_original(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    snap = snapshot(qwen2_model)
    edited, weights_copy = apply_memla_to_model(qwen2_model, tiny_tok, fact_request, hp(max_steps=5), copy=True)
    assert edited is not qwen2_model and weights_copy == {}
    assert_bit_identical(qwen2_model, snap)
    assert changed_neurons(edited, snap, 2) == [7, 11]


def test_sequential_requests_and_weights_copy_holds_the_first_originals(
    qwen2_model, tiny_tok, fact_request, fixed_neurons
):
    snap = snapshot(qwen2_model)
    second = dict(fact_request, case_id=8, target_new="Berlin")
    _, weights_copy = apply_memla_to_model(
        qwen2_model, tiny_tok, [fact_request, second], hp(max_steps=5), return_orig_weights=True
    )
    assert last_edit_report().n_requests == 2 and len(last_edit_report().per_request) == 2
    assert [s.case_id for s in last_edit_report().per_request] == [7, 8]
    for name, orig in weights_copy.items():
        assert torch.equal(orig, snap[name])
        qwen2_model.get_parameter(name).data.copy_(orig)
    assert_bit_identical(qwen2_model, snap)


def test_neuron_cache_is_written_and_reused(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    h = hp(max_steps=2, neuron_cache_dir=str(tmp_path))
    first, _ = execute_memla(qwen2_model, tiny_tok, fact_request, h)
    assert len(fixed_neurons) == 3 and last_edit_report().cache_hits == 0
    files = sorted(tmp_path.rglob("*.json"))
    assert [f.name for f in files] == ["en.json", "fr.json", "zh.json"]
    entries = json.loads((files[0]).read_text())
    assert entries == [{"example_id": 7, "relation_name": "", "neurons": [[1, 3], [1, 5], [2, 7], [2, 11]]}]
    second, _ = execute_memla(qwen2_model, tiny_tok, fact_request, h)
    assert len(fixed_neurons) == 3 and last_edit_report().cache_hits == 3
    for name in first:
        assert torch.equal(first[name], second[name])


def test_neuron_cache_without_case_id_keys_on_the_fact(qwen2_model, tiny_tok, fact_request, monkeypatch, tmp_path):
    """EasyEdit's edit() passes no case_id: two different facts must not share cached neurons."""
    italy = {(1, 4), (1, 3), (2, 8), (2, 7)}  # en neurons of the second fact; zh/fr as in FIXED
    by_prompt = {fact_request["languages"][lang]["prompt"]: FIXED[lang] for lang in FIXED}
    by_prompt["The capital of Italy is"] = italy
    calls = []

    def fake(model, tok, prompts, target, arch, hparams):
        calls.append(prompts[0])
        return set(by_prompt[prompts[0]])

    monkeypatch.setattr(memla_main, "_find_neurons", fake)
    h = hp(max_steps=2, neuron_cache_dir=str(tmp_path))
    first = {k: v for k, v in fact_request.items() if k != "case_id"}
    second = copy.deepcopy(first)
    second["prompt"] = second["languages"]["en"]["prompt"] = "The capital of Italy is"
    second["ground_truth"] = second["languages"]["en"]["target_true"] = "Rome"
    second["target_new"] = second["languages"]["en"]["target_new"] = "Paris"

    def edit(request):
        snap = snapshot(qwen2_model)
        _, orig = apply_memla_to_model(qwen2_model, tiny_tok, [request], h, return_orig_weights=True)
        changed = changed_neurons(qwen2_model, snap, 1), changed_neurons(qwen2_model, snap, 2)
        for name, value in orig.items():
            qwen2_model.get_parameter(name).data.copy_(value)
        return changed

    assert edit(first) == ([3, 5], [7, 11]) and last_edit_report().cache_hits == 0
    # the second fact's en prompt is attributed afresh (before the fix it was the first fact's
    # cache entry); zh and fr are the same texts as before and come from the cache
    assert edit(second) == ([3, 4], [7, 8])  # LIKN {(1, 3), (2, 7)} + its own LSKN
    assert last_edit_report().cache_hits == 2 and calls[-1] == "The capital of Italy is"
    n_calls = len(calls)
    assert edit(first) == ([3, 5], [7, 11])
    assert last_edit_report().cache_hits == 3 and len(calls) == n_calls


# ----------------------------------------------------------------------------- real attribution
def test_real_pipeline_end_to_end(tiny_model, tiny_tok, fact_request):
    snap = snapshot(tiny_model)
    p_new0, p_true0 = probs(tiny_model, tiny_tok)
    _, weights_copy = apply_memla_to_model(tiny_model, tiny_tok, [fact_request], hp(), return_orig_weights=True)
    stats = last_edit_report().as_dict()
    assert set(stats["neurons_per_lang"]) == {"en", "zh", "fr"}
    assert stats["neurons_per_lang"]["en"] > 0
    assert stats["n_lskn"] + stats["n_likn"] > 0
    p_new1, p_true1 = probs(tiny_model, tiny_tok)
    assert p_new1 > p_true1 and p_new1 > p_new0
    assert_bit_identical(tiny_model, snap, skip=set(weights_copy))
    for name, orig in weights_copy.items():
        tiny_model.get_parameter(name).data.copy_(orig)
    assert_bit_identical(tiny_model, snap)


def test_half_precision_model(qwen2_model, tiny_tok, fact_request, fixed_neurons):
    """A bfloat16 model: editors train in float32, the merge keeps the weight dtype."""
    model = qwen2_model.to(torch.bfloat16)
    snap = snapshot(model)
    _, weights_copy = apply_memla_to_model(model, tiny_tok, [fact_request], hp(max_steps=10), return_orig_weights=True)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert changed_neurons(model, snap, 1) == [3, 5] and changed_neurons(model, snap, 2) == [7, 11]
    assert_bit_identical(model, snap, skip=set(weights_copy))
    assert last_edit_report().final_loss < last_edit_report().initial_loss
