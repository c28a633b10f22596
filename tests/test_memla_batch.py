"""Joint batch editing (hparams.batch_mode: joint, memla_plugin.batch) on the tiny models."""
from __future__ import annotations

import copy

import pytest
import torch

from memla_plugin.architectures import resolve_architecture
from memla_plugin.batch import JointHooks, _kept_logits, fact_logprobs, join_rows, prepare_fact, train_joint
from memla_plugin.errors import HParamsError, NoNeuronsError
from memla_plugin.hparams import MEMLAHyperParams
from memla_plugin.memla_main import apply_memla_to_model, execute_memla, last_edit_report
from memla_plugin.training import encode_edit, target_logprobs
from conftest_bench import bench_model_dir  # noqa: F401  (a tiny Qwen2 saved as a model directory)


def second_fact(fact_request: dict) -> dict:
    """Another fact in the same three languages (another subject, prompt and targets)."""
    req = copy.deepcopy(fact_request)
    req.update(case_id=8, prompt="Toyota is produced by", subject="Toyota", target_new="Nokia", ground_truth="Honda",
               rephrase_prompt="The maker of Toyota is")
    req["languages"]["en"].update(prompt="Toyota is produced by", subject="Toyota", target_new="Nokia",
                                  target_true="Honda", paraphrases=["The maker of Toyota is"])
    req["languages"]["zh"].update(prompt="丰田的制造商是", subject="丰田", target_new="诺基亚", target_true="本田")
    req["languages"]["fr"].update(prompt="Toyota est produit par", subject="Toyota", target_new="Nokia",
                                  target_true="Honda")
    return req


def hp(**kw) -> MEMLAHyperParams:
    return MEMLAHyperParams(model_name="tiny", attr_threshold=0.1, **kw)


def params_of(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_batch_of_one_is_the_single_edit_bit_for_bit(make_tiny_model, tiny_tok, fact_request, kind):
    single, joint = make_tiny_model(kind), make_tiny_model(kind)
    _, orig_s = apply_memla_to_model(single, tiny_tok, [fact_request], hp(), return_orig_weights=True)
    rep_s = last_edit_report()
    _, orig_j = apply_memla_to_model(joint, tiny_tok, [fact_request], hp(batch_mode="joint"), return_orig_weights=True)
    rep_j = last_edit_report()
    a, b = params_of(single), params_of(joint)
    assert sorted(orig_s) == sorted(orig_j) and orig_s
    assert all(torch.equal(a[n], b[n]) for n in a), [n for n in a if not torch.equal(a[n], b[n])]
    assert all(torch.equal(orig_s[n], orig_j[n]) for n in orig_s)
    assert rep_j.steps == rep_s.steps and rep_j.stopped_by == rep_s.stopped_by
    assert rep_j.loss_trace == rep_s.loss_trace and rep_j.n_requests == 1 and rep_j.per_request == []


def test_the_default_stays_sequential(qwen2_model, tiny_tok, fact_request):
    assert MEMLAHyperParams().batch_mode == "sequential"
    with pytest.raises(HParamsError, match="batch_mode='parallel'; choose one of sequential, joint"):
        MEMLAHyperParams(batch_mode="parallel")


def _prepared(model, tok, requests, hparams):
    arch = resolve_architecture(model, hparams.attr_module_tmp, hparams.edit_module_tmp)
    return [prepare_fact(model, tok, r, arch, hparams) for r in requests]


def _rows_of(fact) -> dict[int, set[int]]:
    cfg = fact.lora.config
    return {layer: set(cfg.specific.get(layer, [])) | set(cfg.independent.get(layer, [])) for layer in cfg.layers}


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_two_facts_each_delta_only_on_its_own_neurons_and_the_merge_is_their_sum(
        make_tiny_model, tiny_tok, fact_request, kind):
    model = make_tiny_model(kind)
    before = params_of(model)
    reqs = [fact_request, second_fact(fact_request)]
    h = hp(batch_mode="joint", apply_scale=1.0)
    facts = _prepared(model, tiny_tok, reqs, h)
    assert _rows_of(facts[0]) != _rows_of(facts[1])  # the fixture gives the facts different neurons
    train_joint(model, tiny_tok, facts, h)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())  # training never writes weights
    summed: dict[str, torch.Tensor] = {}
    for fact in facts:
        own = _rows_of(fact)
        for layer, delta in fact.lora.deltas().items():
            changed = set(torch.nonzero(delta.abs().sum(1)).flatten().tolist())
            assert changed and changed <= own[layer], (layer, changed - own[layer])
        for name, upd in fact.lora.weight_updates(scale=1.0).items():
            summed[name] = upd if name not in summed else summed[name] + upd
    model2 = make_tiny_model(kind)
    apply_memla_to_model(model2, tiny_tok, reqs, h)
    after = dict(model2.named_parameters())
    for name, upd in summed.items():
        assert torch.allclose(after[name].detach(), before[name] + upd, atol=1e-6), name
    assert {n for n in before if not torch.equal(before[n], after[n].detach())} <= set(summed)


def test_both_edits_of_a_joint_batch_take_effect(gpt2_model, tiny_tok, fact_request):
    reqs = [fact_request, second_fact(fact_request)]
    h = hp(batch_mode="joint", apply_scale=1.0)
    apply_memla_to_model(gpt2_model, tiny_tok, reqs, h)
    report = last_edit_report()
    assert report.n_requests == 2 and len(report.per_request) == 2
    assert [r.case_id for r in report.per_request] == [7, 8]
    for req, fact_report in zip(reqs, report.per_request):
        batch = encode_edit(tiny_tok, req["prompt"], req["target_new"], req["ground_truth"], "en", torch.device("cpu"))
        with torch.no_grad():
            lp_new, lp_true = target_logprobs(gpt2_model, batch)
        assert lp_new > lp_true, req["case_id"]
        # gamma = 1: the merged model is the one the last training step measured
        assert float(lp_new.exp()) == pytest.approx(fact_report.p_new, rel=1e-3)


def test_a_facts_loss_reaches_only_its_own_editor(qwen2_model, tiny_tok, fact_request):
    reqs = [fact_request, second_fact(fact_request)]
    h = hp(batch_mode="joint")
    facts = _prepared(qwen2_model, tiny_tok, reqs, h)
    for fact in facts:  # B starts at zero: give every editor an update, so each fact's rows see the others'
        for name, p in fact.lora.named_parameters():
            if name.split(".")[-1].startswith("B_"):
                torch.nn.init.normal_(p.data, std=0.01)
    pad = tiny_tok.pad_token_id if tiny_tok.pad_token_id is not None else tiny_tok.eos_token_id
    batch = join_rows(facts, pad)
    hooks = JointHooks(facts, batch.input_ids.shape[0], batch.input_ids.device)
    hooks.attach()
    try:
        with torch.enable_grad():
            lp_new, _ = fact_logprobs(_kept_logits(qwen2_model, batch), batch, 0, facts[0])
            (-lp_new).backward()
    finally:
        hooks.detach()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in facts[0].lora.parameters())
    assert all(p.grad is None or not p.grad.any() for p in facts[1].lora.parameters())


def test_a_failing_fact_leaves_the_model_unchanged(qwen2_model, tiny_tok, fact_request):
    before = params_of(qwen2_model)
    bad = second_fact(fact_request)
    h = hp(batch_mode="joint", use_language_independent=False)
    bad["languages"] = {"en": bad["languages"]["en"]}
    import memla_plugin.memla_main as mm

    real = mm._find_neurons
    try:
        mm._find_neurons = lambda m, t, prompts, target, a, hh: set() if "Toyota" in prompts[0] else real(
            m, t, prompts, target, a, hh)
        with pytest.raises(NoNeuronsError):
            apply_memla_to_model(qwen2_model, tiny_tok, [fact_request, bad], h)
    finally:
        mm._find_neurons = real
    assert all(torch.equal(before[n], p) for n, p in qwen2_model.named_parameters())


@pytest.mark.parametrize("change, message", [
    (dict(locality_weight=0.5, background_dir="x"), "batch_mode=joint has no locality term"),
    (dict(save_adapter_dir="adapters"), "batch_mode=joint cannot save adapters"),
])
def test_joint_refuses_what_it_cannot_do(qwen2_model, tiny_tok, fact_request, tmp_path, change, message):
    if "save_adapter_dir" in change:
        change = {"save_adapter_dir": str(tmp_path / "adapters")}
    before = params_of(qwen2_model)
    with pytest.raises(HParamsError, match=message):
        apply_memla_to_model(qwen2_model, tiny_tok, [fact_request], hp(batch_mode="joint", **change))
    assert all(torch.equal(before[n], p) for n, p in qwen2_model.named_parameters())


def test_execute_memla_unchanged_by_the_new_field(qwen2_model, tiny_tok, fact_request):
    """batch_mode only matters to apply_memla_to_model: execute_memla ignores it."""
    a, _ = execute_memla(qwen2_model, tiny_tok, fact_request, hp())
    b, _ = execute_memla(qwen2_model, tiny_tok, fact_request, hp(batch_mode="joint"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[n], b[n]) for n in a)


def test_easyedit_batch_edit_hands_memla_a_chunk_it_edits_jointly(bench_model_dir, fact_request):
    """BaseEditor.batch_edit accepts MEMLA; with batch_mode joint a chunk of batch_size facts is one edit."""
    from memla_plugin import easyedit as ee

    ee.register()
    from easyeditor import BaseEditor
    from easyeditor.editors.batch_editor import BatchEditor

    assert BatchEditor.is_batchable_method("MEMLA") and BatchEditor.is_batchable_method("MEMIT")
    assert not BatchEditor.is_batchable_method("ROME")
    facts = [fact_request, second_fact(fact_request)]
    h = MEMLAHyperParams(model_name=str(bench_model_dir), attr_threshold=0.1, attr_steps=4, max_steps=5,
                         batch_size=2, batch_mode="joint")
    editor = BaseEditor.from_hparams(h)
    before = params_of(editor.model)
    metrics, _, _ = editor.batch_edit(
        prompts=[f["prompt"] for f in facts], target_new=[f["target_new"] for f in facts],
        ground_truth=[f["ground_truth"] for f in facts], subject=[f["subject"] for f in facts],
        languages=[f["languages"] for f in facts], edit_lang="en", case_id=[7, 8], verbose=False)
    report = last_edit_report()
    assert report.n_requests == 2 and [r.case_id for r in report.per_request] == [7, 8]
    assert len(metrics) == 2 and all("rewrite_acc" in m["post"] for m in metrics)
    assert all(torch.equal(before[n], p) for n, p in editor.model.named_parameters())  # batch_edit restored it
