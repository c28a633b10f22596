"""Attribution methods beyond exact 20-step IG: IG with m steps and the one-pass estimate.

Every score is checked against a computation written out here with plain hooks and autograd on
the tiny session models (GPT-2 Conv1D and Qwen2 Linear): the AMIG baseline as the mean of the
EOS-replaced prompts' activations, IG with m steps as its left Riemann sum, and the one-pass
estimate as gradient (at the clean input) times activation difference.
"""
from __future__ import annotations

import pytest
import torch

from memla_plugin.architectures import resolve_architecture
from memla_plugin.errors import HParamsError
from memla_plugin.hparams import MEMLAHyperParams
from memla_plugin.neurons import find_neurons
from memla_plugin.neurons.selection import score_prompt
from memla_plugin.neurons.settings import AttributionSettings

PROMPT = "The capital of France is"


def _ids(tok, target):
    return tok(PROMPT)["input_ids"], tok(target, add_special_tokens=False)["input_ids"]


def _run(model, module, seq, T, put=None):
    """(activation at T-1, logits) of one forward, the activation optionally replaced by ``put``."""
    got = {}

    def hook(_m, _i, out):
        got["a"] = out[0, T - 1].detach().clone()
        if put is None:
            return None
        out = out.clone()
        out[0, T - 1] = put(out[0, T - 1])
        return out

    h = module.register_forward_hook(hook)
    try:
        logits = model(input_ids=torch.tensor([seq])).logits[0]
    finally:
        h.remove()
    return got["a"], logits


def _amig(model, module, ids, eos):
    """Mean over j of the activation at the last prompt position with prompt token j set to EOS."""
    with torch.no_grad():
        rows = [_run(model, module, ids[:j] + [eos] + ids[j + 1 :], len(ids))[0] for j in range(len(ids))]
    return torch.stack(rows).mean(0)


def _hand_ig(model, tok, target, l, m):
    """(a/m) * sum_{k<m} dP(a' + k/m (a - a'))/da, P the summed teacher-forced target probability."""
    arch = resolve_architecture(model)
    module = model.get_submodule(arch.attr_module(l))
    ids, tgt = _ids(tok, target)
    T = len(ids)
    with torch.no_grad():
        a = _run(model, module, ids + tgt, T)[0]
    b = _amig(model, module, ids, tok.eos_token_id)
    total = torch.zeros_like(a)
    for k in range(m):
        x = (b + (k / m) * (a - b)).requires_grad_(True)
        logits = _run(model, module, ids + tgt, T, put=lambda _old, x=x: x)[1]
        probs = torch.softmax(logits[T - 1 : T - 1 + len(tgt)], dim=-1)
        p = sum(probs[t, y] for t, y in enumerate(tgt))
        (g,) = torch.autograd.grad(p, x)
        total += g
    return a * total / m


def _hand_onepass(model, tok, target, l):
    """d(sum_t log P(y_t))/da at the clean activation, times (a - a')."""
    arch = resolve_architecture(model)
    module = model.get_submodule(arch.attr_module(l))
    ids, tgt = _ids(tok, target)
    T = len(ids)
    delta = torch.zeros(module.weight.shape[0] if hasattr(module, "out_features") else module.nf, requires_grad=True)
    a, logits = _run(model, module, ids + tgt, T, put=lambda old: old + delta)
    logp = torch.log_softmax(logits[T - 1 : T - 1 + len(tgt)], dim=-1)
    (g,) = torch.autograd.grad(sum(logp[t, y] for t, y in enumerate(tgt)), delta)
    return g * (a - _amig(model, module, ids, tok.eos_token_id))


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize("m", [1, 3, 5])
def test_ig_with_m_steps_is_its_left_riemann_sum(tiny_model, tiny_tok, m, implementation):
    model, arch = tiny_model, resolve_architecture(tiny_model)
    for target in (" Paris", " Rome, Berlin"):
        settings = AttributionSettings(steps=m, implementation=implementation)
        got = score_prompt(model, tiny_tok, PROMPT, target, arch, settings)
        _frozen(model)
        for l in range(arch.num_layers):
            want = _hand_ig(model, tiny_tok, target, l, m)
            assert torch.allclose(got[l], want, rtol=1e-4, atol=1e-7 * float(want.abs().max())), (target, l)


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_onepass_is_gradient_times_activation_difference(tiny_model, tiny_tok, implementation):
    model, arch = tiny_model, resolve_architecture(tiny_model)
    for target in (" Paris", " Rome, Berlin"):
        settings = AttributionSettings(method="atp", implementation=implementation)
        got = score_prompt(model, tiny_tok, PROMPT, target, arch, settings)
        _frozen(model)
        for l in range(arch.num_layers):
            want = _hand_onepass(model, tiny_tok, target, l)
            assert want.abs().max() > 0
            assert torch.allclose(got[l], want, rtol=1e-4, atol=1e-6 * float(want.abs().max())), (target, l)


def test_onepass_ignores_steps_and_keeps_model_state(qwen2_model, tiny_tok):
    model, arch = qwen2_model, resolve_architecture(qwen2_model)
    model.train()
    one = score_prompt(model, tiny_tok, PROMPT, " Paris", arch, AttributionSettings(method="atp", steps=1))
    two = score_prompt(model, tiny_tok, PROMPT, " Paris", arch, AttributionSettings(method="atp", steps=20))
    assert torch.equal(one, two)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_layers_subset_leaves_other_rows_zero(gpt2_model, tiny_tok):
    arch = resolve_architecture(gpt2_model)
    got = score_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, AttributionSettings(method="atp", layers=(1,)))
    assert got[1].abs().max() > 0
    assert all(float(got[l].abs().max()) == 0 for l in range(arch.num_layers) if l != 1)


def test_find_neurons_reads_attr_method_from_hparams(qwen2_model, tiny_tok):
    arch = resolve_architecture(qwen2_model)
    hp = MEMLAHyperParams(attr_method="atp", attr_steps=4)
    found = find_neurons(qwen2_model, tiny_tok, [PROMPT], " Paris", arch, hp)
    scores = score_prompt(qwen2_model, tiny_tok, PROMPT, " Paris", arch, AttributionSettings(method="atp"))
    top = float(scores.max())
    assert found == {(int(l), int(i)) for l, i in (scores > 0.3 * top).nonzero().tolist()}


def test_cache_key_distinguishes_methods_and_steps():
    key = lambda **kw: AttributionSettings.from_hparams(MEMLAHyperParams(**kw)).cache_key("m")  # noqa: E731
    assert key() == "m__amig-m20-t0.3"  # the faithful default keeps the key existing caches use
    assert key(attr_steps=5) == "m__amig-m5-t0.3"
    assert key(attr_method="atp") == "m__amig-atp-t0.3"
    assert key(attr_method="atp", attr_steps=5) == key(attr_method="atp")  # steps play no part in atp
    assert len({key(), key(attr_steps=10), key(attr_steps=5), key(attr_method="atp")}) == 4


@pytest.mark.parametrize("bad,name", [
    (dict(attr_method="shapley"), "attr_method"),
    (dict(attr_method="IG-fast"), "attr_method"),
    (dict(attr_steps=0), "attr_steps"),
    (dict(attr_steps=-3), "attr_steps"),
])
def test_bad_values_name_the_setting(bad, name):
    with pytest.raises(HParamsError, match=name):
        MEMLAHyperParams(**bad)
    with pytest.raises(HParamsError, match=name):
        AttributionSettings(**{("method" if k == "attr_method" else "steps"): v for k, v in bad.items()})


def test_yaml_attr_method_round_trip(tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("alg_name: MEMLA\nmodel_name: tiny\nattr_method: atp\nattr_steps: 5\n")
    hp = MEMLAHyperParams.from_hparams(path)
    assert (hp.attr_method, hp.attr_steps) == ("atp", 5)
    path.write_text("alg_name: MEMLA\nmodel_name: tiny\nattr_method: nope\n")
    with pytest.raises(HParamsError, match="attr_method"):
        MEMLAHyperParams.from_hparams(path)


def test_ig5_preset_differs_from_the_papers_file_only_in_steps():
    from pathlib import Path

    hp_dir = Path(__file__).resolve().parents[1] / "hparams" / "MEMLA"
    paper = MEMLAHyperParams.from_hparams(hp_dir / "qwen2.5-0.5b.yaml").to_dict()
    quick = MEMLAHyperParams.from_hparams(hp_dir / "qwen2.5-0.5b-ig5.yaml").to_dict()
    assert paper["attr_steps"] == 20 and paper["attr_method"] == "ig"
    assert {k: quick[k] for k in quick if quick[k] != paper[k]} == {"attr_steps": 5}
