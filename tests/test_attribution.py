"""Knowledge-neuron attribution: integrated gradients on the FFN activations (paper §3.1), reference and fast paths.

Uses the shared tiny GPT-2 (Conv1D) and Qwen2 (Linear, GQA) models from conftest.py and a
tiny Llama built here (RoPE + GQA, a BOS-free tokenizer like the shared one).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from memla_plugin.architectures import resolve_architecture
from memla_plugin.errors import EmptyTargetError, HParamsError
from memla_plugin.neurons import attribute_prompt, find_neurons, select_neurons
from memla_plugin.neurons.fast import plan_chunks
from memla_plugin.neurons.inputs import encode_fact
from memla_plugin.neurons.integrated import patch_rows, target_probability

PROMPT = "The capital of France is"
PARAPHRASE = "Paris is a city in"


@pytest.fixture(scope="module")
def _llama_pristine(tiny_tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(99)
    cfg = LlamaConfig(
        vocab_size=len(tiny_tok), hidden_size=32, intermediate_size=40, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2,
        eos_token_id=tiny_tok.eos_token_id, bos_token_id=tiny_tok.eos_token_id, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=["gpt2", "qwen2", "llama"])
def any_model(request, make_tiny_model, _llama_pristine):
    import copy

    if request.param == "llama":
        return copy.deepcopy(_llama_pristine)
    return make_tiny_model(request.param)


def _hp(**kw):
    base = dict(attr_steps=6, attr_baseline="amig", attr_threshold=0.3, attr_batch_size=64, layers=None)
    base.update(kw)
    return type("HP", (), base)()


def _multi_token_target(tok) -> str:
    for t in (" Paris is", " Rome, Berlin", " Tokyo"):
        if len(tok(t, add_special_tokens=False)["input_ids"]) >= 2:
            return t
    raise AssertionError("tokenizer merges every candidate into one token")


# ----------------------------------------------------------------------------- completeness
def _prob_sum(model, fact, patch=None):
    """Summed teacher-forced probability of the target tokens, optionally with a patch applied."""
    seq, last, k = fact.teacher_forced(True), fact.last, fact.n_target
    with torch.no_grad():
        if patch is None:
            logits = model(input_ids=seq).logits
        else:
            with patch_rows(*patch):
                logits = model(input_ids=seq).logits
    return float(target_probability(logits[:, last : last + k], fact.target_ids).sum())


@pytest.mark.parametrize("method", ["reference", "fast"])
def test_zero_baseline_completeness(tiny_model, tiny_tok, method):
    """sum_i attr[l, i] -> P(a) - P(a_l = 0) per layer (IG along that layer's path).

    Tolerance: 3% of |P(a) - P(0)| at m = 500 steps (left Riemann error is O(1/m); the tiny
    models measure 0.1-2%); with m = 5 the same check fails on most layers, so it has teeth.
    """
    model, arch = tiny_model, resolve_architecture(tiny_model)
    for target in (" Paris", _multi_token_target(tiny_tok)):
        fact = encode_fact(tiny_tok, PROMPT, target, "cpu")
        p_a = _prob_sum(model, fact)
        fine = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=500, baseline="zero", method=method, batch_size=256)
        coarse = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=5, baseline="zero", method=method)
        coarse_err = []
        for l in range(arch.num_layers):
            d_ff = fine.shape[1]
            module = model.get_submodule(arch.attr_module(l))
            delta = p_a - _prob_sum(model, fact, (module, torch.zeros(1, d_ff), fact.last))
            assert abs(delta) > 1e-6  # the layer matters at all, else the check is vacuous
            assert abs(float(fine[l].sum()) - delta) <= 0.03 * abs(delta), (l, float(fine[l].sum()), delta)
            coarse_err.append(abs(float(coarse[l].sum()) - delta) / abs(delta))
        assert max(coarse_err) > 0.03


# ----------------------------------------------------------------------------- AMIG by hand
@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_amig_matches_hand_computation_on_one_layer_model(kind, tiny_tok):
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(5)
    V, eos = len(tiny_tok), tiny_tok.eos_token_id
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=16, n_layer=1, n_head=2, n_inner=24, initializer_range=0.3, eos_token_id=eos))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=V, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, initializer_range=0.3, eos_token_id=eos))
    model.eval()
    arch = resolve_architecture(model)
    module = model.get_submodule(arch.attr_module(0))
    target, m = " Paris", 4
    ids = tiny_tok(PROMPT)["input_ids"]
    tgt = tiny_tok(target, add_special_tokens=False)["input_ids"]
    T = len(ids)

    def act_at_last(token_ids):
        got = {}
        h = module.register_forward_hook(lambda _m, _i, out: got.setdefault("a", out[0, T - 1].detach().clone()))
        with torch.no_grad():
            model(input_ids=torch.tensor([token_ids]))
        h.remove()
        return got["a"]

    a = act_at_last(ids)
    # baseline: prompt token j replaced by EOS, activation at the last prompt position, averaged over j
    baselines = [act_at_last(ids[:j] + [eos] + ids[j + 1 :]) for j in range(T)]
    seq = torch.tensor([ids + tgt])
    grad_sum = torch.zeros_like(a)
    for k in range(m):
        # path point k, averaged over j
        point = torch.stack([b + (k / m) * (a - b) for b in baselines]).mean(0).requires_grad_(True)

        def put(_m, _i, out, point=point):
            out = out.clone()
            out[0, T - 1] = point
            return out

        h = module.register_forward_hook(put)
        probs = torch.softmax(model(input_ids=seq).logits[0], dim=-1)
        h.remove()
        p = sum(probs[T - 1 + t, tgt[t]] for t in range(len(tgt)))
        (g,) = torch.autograd.grad(p, point)
        grad_sum += g
    expected = a * grad_sum / m

    for method in ("reference", "fast"):
        got = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=m, baseline="amig", method=method)
        torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-9)
    zero = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=m, baseline="zero")
    assert not torch.allclose(zero[0], expected, rtol=1e-3, atol=0)  # the baseline matters


# ----------------------------------------------------------------------------- fast == reference
@pytest.mark.parametrize("baseline", ["zero", "amig"])
def test_fast_equals_reference(any_model, tiny_tok, baseline):
    arch = resolve_architecture(any_model)
    for prompt, target in ((PROMPT, " Paris"), (PARAPHRASE, _multi_token_target(tiny_tok))):
        ref = attribute_prompt(any_model, tiny_tok, prompt, target, arch, steps=7, baseline=baseline, method="reference")
        # batch of 5 path points: chunks split layers and mix two layers in one staircase
        fast = attribute_prompt(any_model, tiny_tok, prompt, target, arch, steps=7, baseline=baseline, method="fast", batch_size=5)
        assert ref.abs().max() > 0
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
        for thr in (0.1, 0.3, 0.6):
            assert select_neurons(fast, thr) == select_neurons(ref, thr)


@pytest.mark.parametrize("layers", [[2, 1], [0, 1]])
def test_fast_equals_reference_on_layer_subset_and_single_token_prompt(qwen2_model, tiny_tok, layers):
    arch = resolve_architecture(qwen2_model)
    for prompt in (PROMPT, "Paris"):  # "Paris": one prompt token, so no cached prefix at all
        kw = dict(steps=5, baseline="amig", layers=layers)
        ref = attribute_prompt(qwen2_model, tiny_tok, prompt, " Rome", arch, method="reference", **kw)
        fast = attribute_prompt(qwen2_model, tiny_tok, prompt, " Rome", arch, method="fast", **kw)
        skipped = [l for l in range(3) if l not in layers]
        assert torch.count_nonzero(ref[skipped]) == 0 and torch.count_nonzero(fast[skipped]) == 0
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_bos_prompt_and_bos_free_target(_llama_pristine, tiny_tok):
    """A tokenizer that prepends BOS: the prompt keeps it (AMIG replaces it too), the target never has it."""
    import copy

    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(tiny_tok.backend_tokenizer)
    bos = tiny_tok.eos_token
    backend.post_processor = TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tiny_tok.eos_token_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=bos, bos_token=bos)
    assert tok(PROMPT)["input_ids"][0] == tok.eos_token_id
    fact = encode_fact(tok, PROMPT, " Paris", "cpu")
    assert tok.eos_token_id not in fact.target_ids.tolist()
    model = copy.deepcopy(_llama_pristine)
    arch = resolve_architecture(model)
    ref = attribute_prompt(model, tok, PROMPT, " Paris", arch, steps=5, method="reference")
    fast = attribute_prompt(model, tok, PROMPT, " Paris", arch, steps=5, method="fast")
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_fast_equals_reference_with_eager_attention(kind, make_tiny_model, tiny_tok):
    model = make_tiny_model(kind)
    model.set_attn_implementation("eager")
    arch = resolve_architecture(model)
    target = _multi_token_target(tiny_tok)
    ref = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=5, method="reference")
    fast = attribute_prompt(model, tiny_tok, PROMPT, target, arch, steps=5, method="fast", batch_size=7)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_long_prompt_splits_amig_rows_and_lm_head_rows_into_blocks(gpt2_model, tiny_tok, monkeypatch):
    from memla_plugin.neurons import fast as fast_mod

    arch = resolve_architecture(gpt2_model)
    ref = attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, steps=4, method="reference")
    monkeypatch.setattr(fast_mod, "PACK_TOKENS", 4)
    monkeypatch.setattr(fast_mod, "HEAD_ROWS", 3)  # and the LM head in blocks of 3 rows
    assert len(fast_mod.amig_groups(5)) > 2
    fast = attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, steps=4, method="fast")
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


def test_unsupported_stack_falls_back_to_reference(gpt2_model, tiny_tok, caplog):
    arch = dataclasses.replace(resolve_architecture(gpt2_model), model_type="gpt2-unknown-variant")
    ref = attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, steps=3, method="reference")
    with caplog.at_level("WARNING"):
        fast = attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, steps=3, method="fast")
    assert torch.equal(fast, ref)
    assert "using the reference" in caplog.text


def test_amig_groups_cover_every_row_once():
    from memla_plugin.neurons.fast import amig_groups

    for T, budget in ((1, 1024), (10, 1024), (10, 12), (50, 100)):
        groups = amig_groups(T, budget)
        assert [j for g in groups for j in g] == list(range(T))
        assert all(sum(T - j for j in g) <= budget or len(g) == 1 for g in groups)


def test_plan_chunks_covers_every_step_once():
    chunks = plan_chunks([0, 3, 5], steps=7, batch_size=5)
    assert all(sum(p.stop - p.start for p in c) <= 5 for c in chunks)
    seen = sorted((p.layer, s) for c in chunks for p in c for s in range(p.start, p.stop))
    assert seen == [(l, s) for l in (0, 3, 5) for s in range(7)]
    assert all([p.layer for p in c] == sorted({p.layer for p in c}) for c in chunks)


# ----------------------------------------------------------------------------- find_neurons
def test_find_neurons_thresholds_and_unions_over_prompts(gpt2_model, tiny_tok):
    arch = resolve_architecture(gpt2_model)
    hp = _hp()
    prompts = [PROMPT, PARAPHRASE]
    per_prompt = []
    for p in prompts:
        s = attribute_prompt(gpt2_model, tiny_tok, p, " Paris", arch, steps=6, baseline="amig")
        top = float(s.max())
        per_prompt.append({(l, i) for l in range(s.shape[0]) for i in range(s.shape[1]) if float(s[l, i]) > 0.3 * top})
    got = find_neurons(gpt2_model, tiny_tok, prompts, " Paris", arch, hp)
    assert got == per_prompt[0] | per_prompt[1]
    assert per_prompt[0] and per_prompt[0] != got  # both prompts contribute
    loose = find_neurons(gpt2_model, tiny_tok, prompts, " Paris", arch, _hp(attr_threshold=0.1))
    assert got < loose


def test_find_neurons_honours_layers(qwen2_model, tiny_tok):
    arch = resolve_architecture(qwen2_model)
    got = find_neurons(qwen2_model, tiny_tok, [PROMPT], " Paris", arch, _hp(layers=[1]))
    assert got and {l for l, _ in got} == {1}


def test_find_neurons_runs_in_model_dtype_and_leaves_model_as_it_was(qwen2_model, tiny_tok):
    model = qwen2_model.to(torch.bfloat16).train()
    model.model.layers[0].mlp.down_proj.weight.requires_grad_(True)
    arch = resolve_architecture(model)
    s = attribute_prompt(model, tiny_tok, PROMPT, " Paris", arch, steps=4)
    assert s.dtype == torch.float32 and torch.isfinite(s).all() and s.abs().max() > 0
    ref = attribute_prompt(model, tiny_tok, PROMPT, " Paris", arch, steps=4, method="reference")
    assert torch.corrcoef(torch.stack([s.flatten(), ref.flatten()]))[0, 1] > 0.97  # bf16 noise only
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert model.model.layers[0].mlp.down_proj.weight.requires_grad
    assert all(p.requires_grad for p in model.parameters())


def test_empty_target_is_a_named_error(gpt2_model, tiny_tok):
    arch = resolve_architecture(gpt2_model)
    with pytest.raises(EmptyTargetError, match="''"):
        find_neurons(gpt2_model, tiny_tok, [PROMPT], "", arch, _hp())


def test_bad_settings_are_named_errors(gpt2_model, tiny_tok):
    arch = resolve_architecture(gpt2_model)
    with pytest.raises(HParamsError, match="attr_baseline"):
        attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, baseline="mean")
    with pytest.raises(HParamsError, match="layers"):
        attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, layers=[7])
    with pytest.raises(HParamsError, match="method"):
        attribute_prompt(gpt2_model, tiny_tok, PROMPT, " Paris", arch, method="slow")
