"""attr_positions="each": every target token attributed at its own position (not in the paper).

Checked against integrated gradients written out with plain hooks on the tiny session models:
token i of the target is scored as the fact (prompt + target[:i] -> target[i]), its AMIG baseline
replacing each input token of that extended prompt by EOS in turn, and the per-token scores are
averaged.
"""
from __future__ import annotations

import pytest
import torch

from memla_plugin.architectures import resolve_architecture
from memla_plugin.errors import HParamsError
from memla_plugin.hparams import MEMLAHyperParams
from memla_plugin.neurons.inputs import encode_fact
from memla_plugin.neurons.positions import split_by_position
from memla_plugin.neurons.selection import score_prompt
from memla_plugin.neurons.settings import AttributionSettings

PROMPT = "The capital of France is"
MULTI = " Rome, Berlin"  # several tokens in the session tokenizer


def _act_and_logits(model, module, ids, put=None):
    """(activation at the last input position, logits there) of one forward; ``put`` replaces it."""
    got = {}
    T = len(ids)

    def hook(_m, _i, out):
        got["a"] = out[0, T - 1].detach().clone()
        if put is None:
            return None
        out = out.clone()
        out[0, T - 1] = put
        return out

    h = module.register_forward_hook(hook)
    try:
        logits = model(input_ids=torch.tensor([ids])).logits[0, T - 1]
    finally:
        h.remove()
    return got["a"], logits


def _hand_ig_one_token(model, module, ids, y, eos, m):
    """IG (m-step left Riemann sum) of P(y | ids) w.r.t. the activation at the last input position."""
    with torch.no_grad():
        a = _act_and_logits(model, module, ids)[0]
        b = torch.stack([_act_and_logits(model, module, ids[:j] + [eos] + ids[j + 1 :])[0]
                         for j in range(len(ids))]).mean(0)
    total = torch.zeros_like(a)
    for k in range(m):
        x = (b + (k / m) * (a - b)).requires_grad_(True)
        p = torch.softmax(_act_and_logits(model, module, ids, put=x)[1], -1)[y]
        (g,) = torch.autograd.grad(p, x)
        total += g
    return a * total / m


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_split_by_position_extends_the_prompt_with_the_target_prefix(tiny_tok):
    fact = encode_fact(tiny_tok, PROMPT, MULTI, torch.device("cpu"))
    assert fact.n_target >= 2
    parts = split_by_position(fact)
    assert len(parts) == fact.n_target
    prompt, target = fact.prompt_ids[0].tolist(), fact.target_ids.tolist()
    for i, part in enumerate(parts):
        assert part.prompt_ids[0].tolist() == prompt + target[:i]
        assert part.target_ids.tolist() == [target[i]]


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_each_position_is_the_mean_of_per_token_integrated_gradients(tiny_model, tiny_tok, implementation):
    model, arch, m = tiny_model, resolve_architecture(tiny_model), 3
    settings = AttributionSettings(steps=m, implementation=implementation, positions="each")
    got = score_prompt(model, tiny_tok, PROMPT, MULTI, arch, settings)
    _frozen(model)
    prompt = tiny_tok(PROMPT)["input_ids"]
    target = tiny_tok(MULTI, add_special_tokens=False)["input_ids"]
    for l in range(arch.num_layers):
        module = model.get_submodule(arch.attr_module(l))
        want = sum(_hand_ig_one_token(model, module, prompt + target[:i], y, tiny_tok.eos_token_id, m)
                   for i, y in enumerate(target)) / len(target)
        assert torch.allclose(got[l], want, rtol=1e-4, atol=1e-6 * float(want.abs().max())), l


def test_each_position_differs_from_last_for_a_multi_token_target(qwen2_model, tiny_tok):
    arch = resolve_architecture(qwen2_model)
    last = score_prompt(qwen2_model, tiny_tok, PROMPT, MULTI, arch, AttributionSettings(steps=4))
    each = score_prompt(qwen2_model, tiny_tok, PROMPT, MULTI, arch, AttributionSettings(steps=4, positions="each"))
    assert not torch.allclose(last, each)


@pytest.mark.parametrize("method", ["ig", "atp"])
def test_one_token_target_gives_exactly_the_last_position_scores(tiny_model, tiny_tok, method):
    arch = resolve_architecture(tiny_model)
    target = " Paris"
    assert len(tiny_tok(target, add_special_tokens=False)["input_ids"]) == 1
    last = score_prompt(tiny_model, tiny_tok, PROMPT, target, arch, AttributionSettings(steps=4, method=method))
    each = score_prompt(tiny_model, tiny_tok, PROMPT, target, arch,
                        AttributionSettings(steps=4, method=method, positions="each"))
    assert torch.equal(last, each)


def test_hparams_carry_the_switch_and_the_cache_key_tells_it_apart():
    key = lambda **kw: AttributionSettings.from_hparams(MEMLAHyperParams(**kw)).cache_key("m")  # noqa: E731
    assert MEMLAHyperParams().attr_positions == "last"  # the paper's attribution
    assert key() == "m__amig-m20-t0.3"  # unchanged for the faithful default
    assert key(attr_positions="each") == "m__amig-m20-t0.3-poseach"
    assert AttributionSettings.from_hparams(MEMLAHyperParams(attr_positions="each")).positions == "each"


def test_bad_value_names_the_setting():
    with pytest.raises(HParamsError, match="attr_positions"):
        MEMLAHyperParams(attr_positions="all")
    with pytest.raises(HParamsError, match="attr_positions"):
        AttributionSettings(positions="first")
