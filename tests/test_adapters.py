"""MEMLA edits exported as peft LoRA adapters, on the tiny GPT-2 (Conv1D) and Qwen2 (Linear) models.

Attribution is replaced by fixed neuron sets (as in test_memla_edit) so each edit trains
quickly and touches known layers; the adapter path itself (factors, files, peft loading) is
the real one.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from memla_plugin import memla_main
from memla_plugin.adapters import (
    AdapterCapture,
    AdapterError,
    AdapterSidecar,
    combine_adapters,
    load_memla_adapter,
    model_fingerprint,
    read_sidecar,
)
from memla_plugin.errors import HParamsError
from memla_plugin.hparams import MEMLAHyperParams

peft = pytest.importorskip("peft")

# logits of the adapter model against the merged edit: peft adds x A^T B^T to the base output
# instead of multiplying by W + Delta, so they agree up to float32 rounding (measured: <= 2e-6
# on these models, whose logits are O(1))
LOGIT_ATOL = 1e-5

NEURONS = {  # per language, keyed by the edit prompts below
    "en": {(1, 3), (1, 5), (2, 7), (2, 11)},
    "zh": {(1, 3), (2, 7), (2, 9), (0, 4)},
    "fr": {(1, 3), (2, 7), (1, 20)},
    "en2": {(0, 2), (0, 8), (2, 30)},
    "zh2": {(0, 2), (2, 30), (1, 1)},
    "fr2": {(0, 2), (2, 30)},
}

IDS = torch.tensor([[5, 17, 33, 8, 90, 2, 41, 7], [11, 3, 250, 64, 9, 12, 1, 99]])


def hp(**kw) -> MEMLAHyperParams:
    kw.setdefault("lr", 0.05)
    kw.setdefault("max_steps", 25)
    return MEMLAHyperParams(**kw)


def second_fact(fact_request: dict) -> dict:
    """Another fact in en/zh/fr (Italy's capital), with its own neurons."""
    req = copy.deepcopy(fact_request)
    req.update(case_id=8, prompt="The capital of Italy is", subject="Italy", target_new="Berlin", ground_truth="Rome",
               rephrase_prompt=None)
    req["languages"] = {
        "en": {"prompt": "The capital of Italy is", "subject": "Italy", "target_new": "Berlin", "target_true": "Rome",
               "paraphrases": []},
        "zh": {"prompt": "意大利的首都是", "subject": "意大利", "target_new": "柏林", "target_true": "罗马", "paraphrases": []},
        "fr": {"prompt": "La capitale de l'Italie est", "subject": "Italie", "target_new": "Berlin",
               "target_true": "Rome", "paraphrases": []},
    }
    return req


@pytest.fixture
def fixed_neurons(monkeypatch, fact_request):
    by_prompt = {fact_request["languages"][lang]["prompt"]: lang for lang in ("en", "zh", "fr")}
    for lang, data in second_fact(fact_request)["languages"].items():
        by_prompt[data["prompt"]] = lang + "2"

    def fake(model, tok, prompts, target, arch, hparams):
        return set(NEURONS[by_prompt[prompts[0]]])

    monkeypatch.setattr(memla_main, "_find_neurons", fake)


def edit_with_capture(model, tok, request, hparams):
    """Edit a copy of ``model`` (merged, MEMLA's own way) and capture the adapter factors."""
    edited = copy.deepcopy(model)
    capture = AdapterCapture(edited, hparams)
    memla_main.apply_memla_to_model(edited, tok, [request], hparams, on_trained=capture)
    return edited, capture


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


# ----------------------------------------------------------------------------- export -> peft
def test_export_load_equals_merged_edit_and_undoes_bit_exactly(tiny_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    hparams = hp()
    base_logits = logits(tiny_model)
    edited, capture = edit_with_capture(tiny_model, tiny_tok, fact_request, hparams)
    edited_logits = logits(edited)
    assert (edited_logits - base_logits).abs().max() > 1e-2  # the edit did something to compare against
    out = capture.save(tmp_path / "adapter")
    assert {p.name for p in out.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "memla_edit.json"}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["fan_in_fan_out"] == (tiny_model.config.model_type == "gpt2")
    # rank per module = summed ranks of its sub-editors (4 per neuron): layer 1 {3 | 5}, layer 2 {7 | 11}
    ranks = {name: m["rank"] for name, m in read_sidecar(out).modules.items()}
    assert sorted(ranks.values()) == [8, 8]

    # plain peft, no helper
    base = copy.deepcopy(tiny_model)
    model = peft.PeftModel.from_pretrained(base, str(out))
    diff = (logits(model) - edited_logits).abs().max().item()
    assert diff <= LOGIT_ATOL, f"adapter logits differ from the merged edit by {diff}"
    with model.disable_adapter():
        assert torch.equal(logits(model), base_logits)
    merged = model.merge_and_unload()
    for name, p in edited.named_parameters():
        q = merged.get_parameter(name)
        assert torch.allclose(q, p, atol=1e-6, rtol=0), name
        if name not in capture_params(capture):
            assert torch.equal(q, p), f"{name} is not edited but changed on merge"


def capture_params(capture: AdapterCapture) -> set[str]:
    return {f"{name}.weight" for f in capture.factors for name in f}


def test_only_selected_neuron_columns_of_lora_A_are_nonzero(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    from safetensors.torch import load_file

    _, capture = edit_with_capture(qwen2_model, tiny_tok, fact_request, hp())
    out = capture.save(tmp_path / "a")
    tensors = load_file(str(out / "adapter_model.safetensors"))
    a = tensors["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"]  # (rank, d_ff)
    b = tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]  # (d, rank)
    assert a.shape == (8, 48) and b.shape == (32, 8)
    nonzero_cols = set(torch.nonzero(a.abs().sum(0)).flatten().tolist())
    assert nonzero_cols == {3, 5}  # LIKN {3} and LSKN {5} of layer 1
    # the language-specific block (first 4 ranks) reads neuron 5 only, the independent block neuron 3 only
    assert set(torch.nonzero(a[:4].abs().sum(0)).flatten().tolist()) == {5}
    assert set(torch.nonzero(a[4:].abs().sum(0)).flatten().tolist()) == {3}


# ----------------------------------------------------------------------------- sidecar
def test_sidecar_round_trips_and_records_provenance(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    hparams = hp()
    fingerprint = model_fingerprint(qwen2_model)
    _, capture = edit_with_capture(qwen2_model, tiny_tok, fact_request, hparams)
    out = capture.save(tmp_path / "a")
    sc = read_sidecar(out)
    assert sc == AdapterSidecar.from_dict(json.loads(json.dumps(sc.to_dict())))
    assert json.loads(json.dumps(sc.to_dict())) == json.loads((out / "memla_edit.json").read_text())
    assert sc.model_hash == fingerprint and sc.model_type == "qwen2"
    assert sc.apply_scale == 0.5 and sc.hparams["lr"] == 0.05 and len(sc.hparams_hash) == 64
    (edit,) = sc.edits
    assert (edit.case_id, edit.edit_lang, edit.target_new, edit.target_true) == (7, "en", "Rome", "Paris")
    assert edit.likn == {1: [3], 2: [7]} and edit.lskn == {1: [5], 2: [11]}
    assert edit.trained_specific == edit.lskn and edit.neurons_per_lang == {"en": 4, "zh": 4, "fr": 3}
    assert edit.training["steps"] >= 1
    assert "peft" in sc.code and "commit" in sc.code


def test_missing_or_foreign_sidecar_is_a_clear_error(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    _, capture = edit_with_capture(qwen2_model, tiny_tok, fact_request, hp())
    out = capture.save(tmp_path / "a")
    other = copy.deepcopy(qwen2_model)
    with torch.no_grad():
        other.model.embed_tokens.weight[0, 0] += 1.0  # another model of the same shape
    with pytest.raises(AdapterError, match=r"was made for model .* weights hash to"):
        load_memla_adapter(other, out)
    assert not hasattr(other, "peft_config")  # refused before peft touched the model
    with pytest.raises(AdapterError, match="no memla_edit.json"):
        load_memla_adapter(qwen2_model, tmp_path)
    with pytest.raises(AdapterError, match="already holds an adapter"):
        capture.save(out)
    # the check can be skipped knowingly
    assert isinstance(load_memla_adapter(other, out, verify_model=False), peft.PeftModel)


# ----------------------------------------------------------------------------- several edits
def test_named_adapters_switch_and_cat_combination_equals_sequential_merge(
    tiny_model, tiny_tok, fact_request, fixed_neurons, tmp_path
):
    hparams = hp()
    req2 = second_fact(fact_request)
    edited1, cap1 = edit_with_capture(tiny_model, tiny_tok, fact_request, hparams)
    edited2, cap2 = edit_with_capture(tiny_model, tiny_tok, req2, hparams)
    dir1, dir2 = cap1.save(tmp_path / "france"), cap2.save(tmp_path / "italy")

    # both edits merged one after the other into one model (each update computed on the base)
    sequential = copy.deepcopy(tiny_model)
    for cap in (cap1, cap2):
        with torch.no_grad():
            for factors in cap.factors:
                for name, f in factors.items():
                    sequential.get_submodule(name).weight.add_(f.delta_weight())

    model = load_memla_adapter(copy.deepcopy(tiny_model), dir1, adapter_name="france")
    model = load_memla_adapter(model, dir2, adapter_name="italy")
    model.set_adapter("france")
    assert (logits(model) - logits(edited1)).abs().max() <= LOGIT_ATOL
    model.set_adapter("italy")
    assert (logits(model) - logits(edited2)).abs().max() <= LOGIT_ATOL
    combine_adapters(model, ["france", "italy"], "both")
    assert model.active_adapter == "both"
    diff = (logits(model) - logits(sequential)).abs().max().item()
    assert diff <= LOGIT_ATOL, f"cat combination differs from the sequential merge by {diff}"
    assert (logits(sequential) - logits(edited1)).abs().max() > 1e-3  # the second edit mattered
    with pytest.raises(AdapterError, match="already loaded"):
        load_memla_adapter(model, dir1, adapter_name="france")
    with pytest.raises(AdapterError, match="not loaded"):
        combine_adapters(model, ["france", "spain"], "x")


def test_one_call_with_two_requests_exports_their_sum(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    hparams = hp()
    edited = copy.deepcopy(qwen2_model)
    capture = AdapterCapture(edited, hparams)
    memla_main.apply_memla_to_model(edited, tiny_tok, [fact_request, second_fact(fact_request)], hparams,
                                    on_trained=capture)
    out = capture.save(tmp_path / "two")
    sc = read_sidecar(out)
    assert [e.case_id for e in sc.edits] == [7, 8]
    model = load_memla_adapter(copy.deepcopy(qwen2_model), out)
    assert (logits(model) - logits(edited)).abs().max() <= LOGIT_ATOL


# ----------------------------------------------------------------------------- hparams switch
def test_save_adapter_dir_writes_one_adapter_per_call(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path):
    hparams = hp(save_adapter_dir=str(tmp_path / "edits"))
    edited = copy.deepcopy(qwen2_model)
    _, originals = memla_main.apply_memla_to_model(edited, tiny_tok, [fact_request], hparams, return_orig_weights=True)
    first = memla_main.last_edit_report().adapter_dir
    with torch.no_grad():  # restore, as EasyEdit does between edits, and edit the same fact again
        for name, value in originals.items():
            edited.get_parameter(name).copy_(value)
    memla_main.apply_memla_to_model(edited, tiny_tok, [fact_request], hparams)
    second = memla_main.last_edit_report().adapter_dir
    assert first.endswith("case7-en") and second.endswith("case7-en-2")
    assert "save_adapter_dir" not in read_sidecar(first).hparams
    model = load_memla_adapter(copy.deepcopy(qwen2_model), first)
    assert (logits(model) - logits(edited)).abs().max() <= LOGIT_ATOL


def test_failed_save_leaves_the_model_unchanged(qwen2_model, tiny_tok, fact_request, fixed_neurons, tmp_path, monkeypatch):
    from memla_plugin.adapters import export

    def broken(self, directory, overwrite=False):
        raise AdapterError("disk full")

    monkeypatch.setattr(export.AdapterCapture, "save", broken)
    before = {k: v.clone() for k, v in qwen2_model.state_dict().items()}
    with pytest.raises(AdapterError, match="disk full"):
        memla_main.apply_memla_to_model(qwen2_model, tiny_tok, [fact_request], hp(save_adapter_dir=str(tmp_path)))
    assert all(torch.equal(before[k], v) for k, v in qwen2_model.state_dict().items())


def test_save_adapter_dir_validation(tmp_path):
    assert hp(save_adapter_dir=tmp_path / "new").save_adapter_dir == str(tmp_path / "new")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HParamsError, match="save_adapter_dir=.* exists and is not a directory"):
        hp(save_adapter_dir=str(tmp_path / "file"))
    with pytest.raises(HParamsError, match="save_adapter_dir must be a directory path"):
        hp(save_adapter_dir=3)
    with pytest.raises(HParamsError, match="save_adapter_dir must be a directory path"):
        hp(save_adapter_dir=" ")


def test_memla_imports_do_not_import_peft():
    code = ("import sys, memla_plugin.memla_main, memla_plugin.adapters, memla_plugin.cli.edit; "
            "assert 'peft' not in sys.modules, 'peft imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- memla-edit and the reload script
def test_cli_save_adapter_then_fresh_reload_gives_the_same_answers(qwen2_model, tiny_tok, tmp_path, capsys,
                                                                   repo_script):
    """memla-edit --save-adapter, then examples/load_memla_adapter.py on a newly loaded base model."""
    import yaml

    from memla_plugin.cli import edit as cli

    model_dir = tmp_path / "tiny-qwen2"
    qwen2_model.save_pretrained(model_dir)
    tiny_tok.save_pretrained(model_dir)
    config = yaml.safe_load(cli.find_hparams_file().read_text())
    config.update(model_name=str(model_dir), attr_steps=4, lr=0.05, max_steps=30)
    (tmp_path / "hp.yaml").write_text(yaml.safe_dump(config))
    adapter = tmp_path / "adapter"
    argv = ["--record", "4482", "--lang", "en", "--hparams", str(tmp_path / "hp.yaml"), "--save-adapter", str(adapter)]
    edited = cli.run(cli.build_parser().parse_args(argv))
    assert "saved the edit as a peft LoRA adapter" in capsys.readouterr().err
    assert read_sidecar(adapter).edits[0].case_id == 4482
    with pytest.raises(HParamsError, match="already holds an adapter"):
        cli.run(cli.build_parser().parse_args(argv))

    example = repo_script("examples/load_memla_adapter.py")
    out = tmp_path / "reload.json"
    assert example.main([str(adapter), "--model", str(model_dir), "--verify", "--json", str(out)]) == 0
    reloaded = json.loads(out.read_text())
    for when in ("before", "after"):
        for lang, row in edited[when].items():
            again = reloaded[when][lang]
            assert again["answer"] == row["answer"], (when, lang)
            for key in ("p_new", "p_true"):
                assert again[key] == pytest.approx(row[key], rel=1e-4), (when, lang, key)
