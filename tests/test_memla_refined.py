"""The switches of the refined MEMLA preset, and the paper's MEMLA left exactly as it was.

Each switch is tested for what it claims to change; the faithful path (every switch at its
default) is compared with the updates the code computed before the switches existed (stored
under tests/data/memla_faithful), on the tiny session models.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from memla_plugin.architectures import resolve_architecture
from memla_plugin.errors import HParamsError
from memla_plugin.hparams import MEMLAHyperParams
from memla_plugin.masked_lora import MaskedLoRAConfig, MaskedLoRAModel
from memla_plugin.memla_main import execute_memla
from memla_plugin.neurons import NeuronCache, build_neuron_sets
from memla_plugin.neurons.background import Background, BackgroundError, drop_generic, generic_neurons
from memla_plugin.neurons.background_build import attribute_background, write_prompts
from memla_plugin.neurons.settings import AttributionSettings
from memla_plugin.neurons.sets import group_by_layer
from memla_plugin.training import (
    add_locality_rows,
    encode_edit,
    locality_kl,
    logprobs_with_locality,
    target_logprobs,
    train_masked_lora,
)

# The updates execute_memla returned for the conftest fact_request with default hparams (seed 42,
# model_name "tiny") at attr_threshold 0.3 and 0.1, computed with the code of commit 76f66ad, before
# any switch of the refined preset existed (tests/data/memla_faithful/make_reference.py says how).
# At 0.1 the GPT-2 edit has a non-empty language-independent set, so both editors are covered.
#
# Compared with a tolerance, not bit for bit: the float bits depend on the machine (sha256 digests
# of these updates recorded on an earlier machine failed on an AVX2 one without AVX-512, where the
# code of 76f66ad and of main give the same bits as each other), e.g. on which CPU kernels torch
# picks. Forcing other kernels on one machine (ATEN_CPU_CAPABILITY=default, or MKL_CBWR=COMPATIBLE)
# moved no entry by more than 1.5e-6 in updates of size 0.09-0.38; a change to the method (another
# neuron mask, loss or step count) moves them by orders of magnitude more.
FAITHFUL_REFERENCE = Path(__file__).parent / "data" / "memla_faithful" / "updates.pt"
FAITHFUL_CASES = [("gpt2", 0.3), ("gpt2", 0.1), ("qwen2", 0.3), ("qwen2", 0.1)]
FAITHFUL_ATOL = 2e-5
SWITCHES_OFF = dict(attr_target_form="unspaced", likn_min_langs=None, background_dir=None,
                    generic_max_share=None, locality_weight=0.0)

LOC_PROMPTS = ["Rome is a city in", "The capital of Germany is", "Toyota is produced by"]


@pytest.fixture(scope="module")
def faithful_reference() -> dict[str, dict[str, torch.Tensor]]:
    reference = torch.load(FAITHFUL_REFERENCE, weights_only=True)
    # make_reference.py lists the same cases (CASES); a case added to one list only fails here, not silently
    assert set(reference) == {f"{kind}|{threshold}" for kind, threshold in FAITHFUL_CASES}, \
        f"{FAITHFUL_REFERENCE} holds {sorted(reference)}: rerun tests/data/memla_faithful/make_reference.py"
    return reference


@pytest.mark.parametrize("kind,threshold", FAITHFUL_CASES)
def test_the_papers_memla_is_unchanged(make_tiny_model, tiny_tok, fact_request, faithful_reference,
                                       kind, threshold):
    reference = faithful_reference[f"{kind}|{threshold}"]
    default, _ = execute_memla(make_tiny_model(kind), tiny_tok, fact_request,
                               MEMLAHyperParams(model_name="tiny", attr_threshold=threshold))
    switched_off, _ = execute_memla(make_tiny_model(kind), tiny_tok, fact_request,
                                    MEMLAHyperParams(model_name="tiny", attr_threshold=threshold, **SWITCHES_OFF))
    # every switch at its default is the same computation as every switch named off: same bits here
    assert sorted(default) == sorted(switched_off) == sorted(reference)
    for name in reference:
        assert torch.equal(default[name], switched_off[name]), name
        torch.testing.assert_close(default[name].to(torch.float32), reference[name],
                                   rtol=0.0, atol=FAITHFUL_ATOL, msg=lambda m, n=name: f"{n}: {m}")


# ----------------------------------------------------------------------------- hparams
def test_switch_settings_are_checked():
    with pytest.raises(HParamsError, match="likn_min_langs"):
        MEMLAHyperParams(likn_min_langs=4)
    with pytest.raises(HParamsError, match="attr_target_form"):
        MEMLAHyperParams(attr_target_form="spaced")
    with pytest.raises(HParamsError, match="generic_max_share needs background_dir"):
        MEMLAHyperParams(generic_max_share=0.1)
    with pytest.raises(HParamsError, match="locality_weight needs background_dir"):
        MEMLAHyperParams(locality_weight=1.0)
    with pytest.raises(HParamsError, match="generic_max_share must be"):
        MEMLAHyperParams(generic_max_share=1.5, background_dir="x")


def test_preset_files_differ_from_the_papers_files_only_in_the_switches():
    for model in ("qwen2.5-0.5b", "mgpt-1.3b", "llama3-8b"):
        base = MEMLAHyperParams.from_hparams(f"hparams/MEMLA/{model}.yaml").to_dict()
        preset = MEMLAHyperParams.from_hparams(f"hparams/MEMLA/{model}-refined.yaml").to_dict()
        differ = sorted(k for k in base if base[k] != preset[k])
        assert differ == sorted(["attr_target_form", "attr_positions", "likn_min_langs", "background_dir", "generic_max_share",
                                 "locality_weight", "locality_prompts"]), model


# ----------------------------------------------------------------------------- scored target
def test_scored_target_form_attributes_the_trained_tokens(qwen2_model, tiny_tok, fact_request, monkeypatch):
    import memla_plugin.memla_main as mm

    seen = []
    monkeypatch.setattr(mm, "_find_neurons", lambda m, t, prompts, target, a, h: seen.append(target) or {(0, 1), (1, 2)})
    execute_memla(qwen2_model, tiny_tok, fact_request, MEMLAHyperParams(model_name="t", max_steps=1))
    execute_memla(qwen2_model, tiny_tok, fact_request,
                  MEMLAHyperParams(model_name="t", max_steps=1, attr_target_form="scored"))
    assert seen == ["Paris", "巴黎", "Paris", " Paris", "巴黎", " Paris"]  # en, zh, fr; no space for zh


def test_scored_target_form_has_its_own_cache_key():
    plain = AttributionSettings.from_hparams(MEMLAHyperParams())
    scored = AttributionSettings.from_hparams(MEMLAHyperParams(attr_target_form="scored"))
    assert plain.cache_key("m") == "m__amig-m20-t0.3"  # the key existing caches were written under
    assert scored.cache_key("m") == "m__amig-m20-t0.3-scored"


# ----------------------------------------------------------------------------- k of n
def test_likn_shared_by_k_of_n_languages():
    per_lang = {"en": {(0, 1), (0, 2), (1, 3), (2, 9)}, "zh": {(0, 1), (1, 3), (1, 4)}, "fr": {(0, 1), (0, 2), (1, 4)}}
    paper = build_neuron_sets(per_lang, "en", ["en", "zh", "fr"])
    assert paper.likn == {0: [1]} and paper.lskn == {0: [2], 1: [3], 2: [9]}
    two = build_neuron_sets(per_lang, "en", ["en", "zh", "fr"], min_langs=2)
    assert two.likn == group_by_layer({(0, 1), (0, 2), (1, 3), (1, 4)})  # (1, 4): zh and fr, not en
    assert two.lskn == {2: [9]}
    assert build_neuron_sets(per_lang, "en", ["en", "zh", "fr"], min_langs=3).likn == paper.likn
    one = build_neuron_sets(per_lang, "en", ["en", "zh"], min_langs=5)  # capped at the languages given
    assert one.likn == {0: [1], 1: [3]}


# ----------------------------------------------------------------------------- generic filter
def _background(tmp_path, key="m__amig-m20-t0.3"):
    cache = NeuronCache(tmp_path, key)
    facts = [{(0, 1), (0, 2)}, {(0, 1), (1, 5)}, {(0, 1), (0, 2)}, {(0, 1)}, {(2, 7)}]  # 5 facts
    for n, found in enumerate(facts):
        cache.put(100 + n, "en", "", found)
    return Background(tmp_path, key)


def test_generic_filter_removes_exactly_the_neurons_above_the_share(tmp_path):
    bg = _background(tmp_path)
    shares, n = bg.shares("en")
    assert n == 5 and shares[(0, 1)] == 0.8 and shares[(0, 2)] == 0.4 and shares[(1, 5)] == 0.2
    assert generic_neurons(shares, 0.4) == {(0, 1)}  # 0.4 is not above 0.4
    assert generic_neurons(shares, 0.3) == {(0, 1), (0, 2)}
    per_lang = {"en": {(0, 1), (0, 2), (1, 5), (3, 3)}, "zh": {(0, 2), (4, 4)}}  # zh pooled from en
    kept, dropped = drop_generic(per_lang, bg, 0.3)
    assert kept == {"en": {(1, 5), (3, 3)}, "zh": {(4, 4)}} and dropped == {"en": 2, "zh": 1}


def test_generic_filter_needs_a_background_for_the_setting(tmp_path):
    _background(tmp_path)
    with pytest.raises(BackgroundError, match="no neuron sets under"):
        Background(tmp_path, "m__amig-m20-t0.3-scored").shares("en")
    with pytest.raises(BackgroundError, match="not a directory"):
        Background(tmp_path / "missing", "k")


def test_an_unfinished_background_is_refused(tmp_path):
    bg = _background(tmp_path)
    (tmp_path / "provenance.json").write_text(json.dumps({bg.model_key: {"fact_ids": [100, 101, 999]}}))
    with pytest.raises(BackgroundError, match="lacks 1 of its 3 facts"):
        Background(tmp_path, bg.model_key).shares("en")
    (tmp_path / "provenance.json").write_text(json.dumps({bg.model_key: {"fact_ids": [100, 101]}}))
    assert Background(tmp_path, bg.model_key).shares("en") == ({(0, 1): 1.0, (0, 2): 0.5, (1, 5): 0.5}, 2)


def test_background_builder_and_prompts(qwen2_model, tiny_tok, fact_request, tmp_path):
    other = json.loads(json.dumps(fact_request))
    other["case_id"] = 8
    other["languages"]["en"]["template"] = "The capital of {} is"
    write_prompts(tmp_path, [fact_request, other], {"split": "test fixture"})
    bg = Background(tmp_path, "k")
    assert bg.prompts("en", 1, template="The capital of {} is") == ["The capital of France is"]
    assert len(bg.prompts("en", 5)) == 2
    arch = resolve_architecture(qwen2_model, None, None)
    settings = AttributionSettings(steps=4)
    cache = attribute_background(qwen2_model, tiny_tok, arch, [fact_request], settings, "tiny", tmp_path, ["en", "fr"])
    assert cache.get(7, "en") and cache.get(7, "fr") is not None
    assert Background(tmp_path, settings.cache_key("tiny")).languages() == ["en", "fr"]


def test_preset_edit_reports_the_filter(qwen2_model, tiny_tok, fact_request, tmp_path, monkeypatch):
    import memla_plugin.memla_main as mm

    monkeypatch.setattr(mm, "_find_neurons", lambda *a: {(0, 1), (0, 2), (1, 5), (2, 3)})
    _background(tmp_path, "t__amig-m20-t0.3")
    hp = MEMLAHyperParams(model_name="t", max_steps=2, background_dir=str(tmp_path), generic_max_share=0.3)
    _, report = execute_memla(qwen2_model, tiny_tok, fact_request, hp)
    assert report.generic_dropped_per_lang == {"en": 2, "zh": 2, "fr": 2}
    assert report.n_likn == 2 and report.n_lskn == 0  # (1, 5) and (2, 3) in every language


# ----------------------------------------------------------------------------- locality term
def _lora(model, tok):
    arch = resolve_architecture(model, None, None)
    sets = build_neuron_sets({"en": {(1, 3), (2, 4)}}, "en", [])
    return MaskedLoRAModel(model, MaskedLoRAConfig.from_neuron_sets(sets), arch.edit_module_tmp, seed=0)


def test_locality_kl_is_zero_exactly_when_the_distributions_match():
    ref = torch.randn(3, 11).log_softmax(-1)
    assert float(locality_kl(ref, ref.clone())) == 0.0
    assert float(locality_kl(ref, torch.randn(3, 11).log_softmax(-1))) > 0.0


def test_locality_rows_leave_the_edit_rows_alone(tiny_model, tiny_tok):
    batch = encode_edit(tiny_tok, "The capital of France is", "Rome", "Paris", "en", torch.device("cpu"))
    wide = add_locality_rows(batch, tiny_tok, LOC_PROMPTS + ["The mother tongue of Danielle Darrieux is French and"])
    with torch.no_grad():
        plain = target_logprobs(tiny_model, batch)
        new, true, loc = logprobs_with_locality(tiny_model, wide)
        alone = tiny_model(input_ids=torch.tensor([tiny_tok(LOC_PROMPTS[1])["input_ids"]])).logits[0, -1]
    torch.testing.assert_close(torch.stack([new, true]), torch.stack(plain), rtol=1e-5, atol=1e-5)
    assert loc.shape == (4, tiny_model.config.vocab_size)
    # a locality row's last position holds the next-token distribution of that prompt alone
    torch.testing.assert_close(loc[1], alone.float().log_softmax(-1), rtol=1e-4, atol=1e-4)


def test_locality_term_is_zero_while_the_weights_are_unchanged_and_then_restrains(qwen2_model, tiny_tok):
    hp = MEMLAHyperParams(max_steps=8, stop_prob=1.0, stop_loss=0.0, locality_weight=1.0, background_dir="x", lr=1e-2)
    lora = _lora(qwen2_model, tiny_tok)
    on = train_masked_lora(qwen2_model, tiny_tok, lora, "The capital of France is", "Rome", "Paris", "en", hp,
                           locality_prompts=LOC_PROMPTS)
    assert on.locality_kl[0] == 0.0  # B = 0 before the first step: the edited model is the unedited one
    assert on.locality_kl[-1] > 0.0
    assert on.losses[0] == pytest.approx(hp.new_loss_weight * -torch.tensor(on.p_new[0]).log().item()
                                         + hp.true_loss_weight * on.p_true[0], rel=1e-5)
    off = train_masked_lora(qwen2_model, tiny_tok, _lora(qwen2_model, tiny_tok), "The capital of France is", "Rome",
                            "Paris", "en", hp.replace(locality_weight=0.0), locality_prompts=LOC_PROMPTS)
    assert off.locality_kl == [] and off.losses != on.losses
