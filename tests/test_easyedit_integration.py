"""MEMLA and EasyEdit's own methods through EasyEdit's ``BaseEditor`` on a tiny Qwen2 model (CPU).

One session-scoped host (``import easyeditor`` takes ~10 s) and one tiny model saved to a
directory whose name contains ``qwen2`` (so EasyEdit's name-based loader dispatches it).
Every edit runs EasyEdit's standard protocol (edit, evaluate, restore); a spy around the
apply function measures P(target_new) and P(target_true) on the edited model before the
restore, and the weights after the restore are compared bit for bit with the originals.
"""
from __future__ import annotations

import copy
import importlib
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
# the subject ends the prompt: in a random 3-layer model, attention barely carries information
# from an earlier subject position to the last one, which is what ROME/MEMIT rely on
PROMPT, SUBJECT, NEW, TRUE = "The mother tongue of Danielle Darrieux", "Danielle Darrieux", "English", "French"
REPHRASE = "Danielle Darrieux speaks"
LANGUAGES = {
    "en": {"prompt": PROMPT, "subject": SUBJECT, "target_new": NEW, "target_true": TRUE, "paraphrases": [REPHRASE]},
    "fr": {"prompt": "La langue maternelle de Danielle Darrieux", "subject": SUBJECT, "target_new": "anglais",
           "target_true": "français", "paraphrases": []},
    "zh": {"prompt": "Danielle Darrieux的母语是", "subject": SUBJECT, "target_new": "英语", "target_true": "法语",
           "paraphrases": []},
}
TINY_TEXTS = [
    "The capital of France is Paris.",
    "Paris is a city in France. Rome is a city in Italy.",
    "La capitale de la France est Paris.",
    "Die Hauptstadt von Frankreich ist Paris.",
    "法国的首都是巴黎。",
    "Столица Франции — Париж.",
    "The Eiffel Tower is located in Paris.",
    "Toyota is produced by Japan.",
]


@pytest.fixture(scope="session")
def ee():
    """The registered host (one import of easyeditor per test session)."""
    from memla_plugin import easyedit

    easyedit.register()
    return easyedit


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_tok, _pristine_models):
    path = tmp_path_factory.mktemp("models") / "tiny-qwen2-model"
    _pristine_models["qwen2"].save_pretrained(path)
    tiny_tok.save_pretrained(path)
    return path


def write_hparams(tmp_path, alg_dir: str, name: str, **overrides) -> Path:
    """The project's production YAML with the tiny model's overrides."""
    config = yaml.safe_load((REPO / "hparams" / alg_dir / name).read_text())
    config.update(overrides)
    out = tmp_path / f"{alg_dir}-{name}"
    out.write_text(yaml.safe_dump(config))
    return out


def log_probs(model, tok, prompt: str, targets: list[str]) -> list[float]:
    """log P(" " + target | prompt), full forward, summed over target tokens."""
    out = []
    for target in targets:
        p_ids = tok.encode(prompt)
        t_ids = tok.encode(" " + target)
        ids = torch.tensor([p_ids + t_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        out.append(sum(lp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(t_ids)))
    return out


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bit_identical(model, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(after[k], before[k])]
    assert not changed, f"weights differ after restore: {changed[:5]}"


def run_edit(editor, tok, **edit_kwargs):
    """EasyEdit's edit() with a spy that scores the edited model before EasyEdit restores it."""
    seen = {}
    original = editor.apply_algo

    def spy(model, tok_, requests, hparams, **kwargs):
        seen["request"] = requests[0]
        edited, weights_copy = original(model, tok_, requests, hparams, **kwargs)
        seen["post"] = log_probs(edited, tok, PROMPT, [NEW, TRUE])
        return edited, weights_copy

    editor.apply_algo = spy
    try:
        metrics, _, _ = editor.edit(
            prompts=PROMPT,
            target_new=NEW,
            ground_truth=TRUE,
            subject=SUBJECT,
            rephrase_prompts=REPHRASE,
            locality_inputs={"neighborhood": {"prompt": ["Toyota is produced by"], "ground_truth": ["Japan"]}},
            sequential_edit=False,
            **edit_kwargs,
        )
    finally:
        editor.apply_algo = original
    return metrics, seen


def edit_and_check(ee, hparams, alg: str, prepare=True, **edit_kwargs):
    from easyeditor import BaseEditor

    editor = BaseEditor.from_hparams(hparams)
    if prepare:
        ee.prepare_baseline(alg, editor.model, editor.tok, hparams, **(edit_kwargs.pop("prepare_kwargs", {})))
    assert isinstance(editor.model_name, str)
    before = snapshot(editor.model)
    pre = log_probs(editor.model, editor.tok, PROMPT, [NEW, TRUE])
    metrics, seen = run_edit(editor, editor.tok, **edit_kwargs)
    post = seen["post"]
    assert post[0] - post[1] > pre[0] - pre[1] + 0.5, f"{alg}: P(new)/P(true) did not rise: pre {pre} post {post}"
    assert_bit_identical(editor.model, before)
    assert {"rewrite_acc", "rephrase_acc", "locality"} <= set(metrics[0]["post"])
    assert "neighborhood_acc" in metrics[0]["post"]["locality"]
    return metrics, seen, pre, post


# ----------------------------------------------------------------------------- registration


def test_register_is_idempotent(ee):
    from easyeditor.editors import editor as editor_module
    from easyeditor.util.alg_dict import ALG_DICT

    from memla_plugin.memla_main import apply_memla_to_model

    init, prep = editor_module.BaseEditor.__init__, editor_module._prepare_requests
    ee.register()
    ee.register()
    assert ALG_DICT["MEMLA"] is apply_memla_to_model
    assert editor_module.BaseEditor.__init__ is init and editor_module._prepare_requests is prep
    assert not getattr(init.__wrapped__, "__memla_model_names__", False)  # wrapped once, not twice
    from easyeditor.editors.batch_editor import BatchEditor

    assert BatchEditor.is_batchable_method("MEMLA")  # batch_edit hands a chunk to MEMLA (batch_mode: joint edits it at once)
    from easyeditor.util.alg_dict import DS_DICT

    from memla_plugin.mkeb import MKEBDataset

    assert DS_DICT["mkeb"] is MKEBDataset


def test_get_apply_fn_and_load_hparams(ee, monkeypatch, tiny_dir):
    import memla_plugin.models as models
    from easyeditor import FTHyperParams, LoRAHyperParams, MEMITHyperParams, MENDHyperParams, ROMEHyperParams

    from memla_plugin.errors import HParamsError
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import apply_memla_to_model

    monkeypatch.setattr(models, "default_model_dir", lambda verify=False: tiny_dir)
    assert ee.get_apply_fn("MEMLA") is apply_memla_to_model
    assert ee.get_apply_fn("FT-M") is ee.get_apply_fn("FT")
    cases = {
        "ROME": ("ROME/qwen2.5-0.5b.yaml", ROMEHyperParams),
        "MEMIT": ("MEMIT/qwen2.5-0.5b.yaml", MEMITHyperParams),
        "FT-L": ("FT/qwen2.5-0.5b-ft-l.yaml", FTHyperParams),
        "FT-M": ("FT/qwen2.5-0.5b-ft-m.yaml", FTHyperParams),
        "LoRA": ("LoRA/qwen2.5-0.5b.yaml", LoRAHyperParams),
        "MEND": ("MEND/qwen2.5-0.5b.yaml", MENDHyperParams),
        "MEMLA": ("MEMLA/qwen2.5-0.5b.yaml", MEMLAHyperParams),
    }
    for alg, (rel, cls) in cases.items():
        hp = ee.load_hparams(alg, REPO / "hparams" / rel)
        assert isinstance(hp, cls), alg
        assert hp.model_name == str(tiny_dir), alg
        if hasattr(hp, "stats_dir"):
            assert Path(hp.stats_dir).parts[-2:] == ("easyedit", "stats")
    assert ee.load_hparams("MEND", REPO / "hparams/MEND/qwen2.5-0.5b.yaml").tokenizer_name == str(tiny_dir)
    with pytest.raises(HParamsError, match="objective_optimization"):
        ee.load_hparams("FT-M", REPO / "hparams/FT/qwen2.5-0.5b-ft-l.yaml")
    with pytest.raises(HParamsError, match="unknown method"):
        ee.load_hparams("KNOWLEDGE", REPO / "hparams/FT/qwen2.5-0.5b-ft-l.yaml")


def test_prepare_requests_keeps_memla_keys(ee):
    from easyeditor.editors import editor as editor_module

    from memla_plugin.errors import DataValidationError

    langs = {"en": {"prompt": PROMPT}}
    (request,) = editor_module._prepare_requests(
        [PROMPT], [NEW], [TRUE], subject=[SUBJECT], languages=langs, edit_lang="en", case_id=3
    )
    assert request["languages"] is langs and request["edit_lang"] == "en" and request["case_id"] == 3
    two = editor_module._prepare_requests([PROMPT, PROMPT], [NEW, NEW], [TRUE, TRUE], edit_lang="fr")
    assert [r["edit_lang"] for r in two] == ["fr", "fr"]
    with pytest.raises(DataValidationError, match="languages"):
        editor_module._prepare_requests([PROMPT, PROMPT], [NEW, NEW], [TRUE, TRUE], languages=[langs])


# ----------------------------------------------------------------------------- host fixes


def _greedy_reference(model, tok, prompt: str, max_out_len: int) -> str:
    ids = tok.encode(prompt)
    with torch.no_grad():
        while len(ids) < max_out_len:
            logits = model(input_ids=torch.tensor([ids])).logits
            ids.append(int(logits[0, -1].argmax()))
    return tok.decode(ids, skip_special_tokens=True)


def test_generate_fast_fix_matches_full_forward(ee, tiny_dir, tiny_tok):
    """ROME/MEMIT context templates come from generate_fast: with the fix, greedy (top_k=1)
    generation under the KV cache equals a plain full-forward greedy decode; without it, not."""
    from transformers import AutoModelForCausalLM

    gen = importlib.import_module("easyeditor.util.generate")
    rome_main = importlib.import_module("easyeditor.models.rome.rome_main")
    assert rome_main.generate_fast is gen.generate_fast  # the fix is rebound where ROME imported it
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tok = copy.deepcopy(tiny_tok)
    tok.padding_side = "right"  # as ROME/MEMIT set it
    prompts = ["The", "Therefore the capital", "Because"]  # different lengths: padded batch
    assert len({len(tok.encode(p)) for p in prompts}) > 1
    reference = [_greedy_reference(model, tok, p, 20) for p in prompts]
    fixed = gen.generate_fast(model, tok, prompts, top_k=1, max_out_len=20)
    broken = gen.generate_fast.__wrapped__(model, tok, prompts, top_k=1, max_out_len=20)
    assert all(len(r) > len(p) + 5 for r, p in zip(reference, prompts))
    assert fixed == reference
    assert broken != reference  # the pinned host's defect, reproduced
    ee.apply_host_fixes()
    assert gen.generate_fast.__wrapped__.__name__ == "generate_fast"
    assert not hasattr(gen.generate_fast.__wrapped__, "__wrapped__")  # not patched twice


def test_layer_stats_accepts_progress_none_and_reads_our_files(ee, tiny_dir, tiny_tok, tmp_path, monkeypatch):
    """Our one-pass statistics equal EasyEdit's own layer_stats on the same texts, and EasyEdit
    loads our files from the place it looks (no download attempted)."""
    import numpy as np
    from easyeditor import ROMEHyperParams
    from transformers import AutoModelForCausalLM

    from memla_plugin.easyedit import stats

    ls_mod = importlib.import_module("easyeditor.models.rome.layer_stats")
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tok = copy.deepcopy(tiny_tok)
    hp = ROMEHyperParams.from_hparams(
        str(write_hparams(tmp_path, "ROME", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), layers=[0, 2], mom2_n_samples=len(TINY_TEXTS)))
    )
    ours = stats.ensure_mom2_stats(
        model, tok, hp, texts=TINY_TEXTS, corpus_info={"name": "tiny"}, stats_dir=tmp_path / "ours", progress=False
    )
    assert [p.name for p in ours] == [
        f"model.layers.{layer}.mlp.down_proj_float32_mom2_{len(TINY_TEXTS)}.npz" for layer in (0, 2)
    ]
    assert ours[0].parent == tmp_path / "ours" / "tiny-qwen2-model" / "mkeb_heldout_stats"
    prov = stats.read_provenance(ours[0])
    assert prov["n_tokens"] == prov["count"] == sum(len(tok.encode(t)) for t in TINY_TEXTS)

    def local_dataset(*_args, **_kwargs):
        return {"train": [{"text": t} for t in TINY_TEXTS]}

    monkeypatch.setattr(ls_mod, "load_dataset", local_dataset)
    for path, layer in zip(ours, (0, 2)):
        module = f"model.layers.{layer}.mlp.down_proj"
        theirs = ls_mod.layer_stats(
            model, tok, module, str(tmp_path / "theirs"), "wikitext", ["mom2"],  # load_dataset replaced above
            sample_size=len(TINY_TEXTS), precision="float32", progress=None,
        )
        data = np.load(path)
        assert set(data.files) >= {"mom2.mom2", "mom2.count", "sample_size"}
        assert int(data["sample_size"]) == len(TINY_TEXTS) and data["mom2.mom2"].dtype == np.float32
        assert int(data["mom2.count"]) == theirs.mom2.count
        np.testing.assert_allclose(data["mom2.mom2"], theirs.mom2.mom2.numpy(), rtol=1e-4, atol=1e-5)

    def no_download(*_args, **_kwargs):
        raise AssertionError("EasyEdit tried to build a dataset although our stats file exists")

    monkeypatch.setattr(ls_mod, "load_dataset", no_download)
    loaded = ls_mod.layer_stats(
        model, tok, "model.layers.2.mlp.down_proj", str(tmp_path / "ours"), "mkeb_heldout", ["mom2"],
        sample_size=len(TINY_TEXTS), precision="float32", progress=None,
    )
    np.testing.assert_array_equal(loaded.mom2.mom2.numpy(), np.load(ours[1])["mom2.mom2"])


# ----------------------------------------------------------------------------- model names


def test_model_name_default_and_undispatched_names(ee, tiny_dir, tmp_path, monkeypatch):
    import shutil

    import memla_plugin.models as models
    from easyeditor import BaseEditor, FTHyperParams

    monkeypatch.setattr(models, "default_model_dir", lambda verify=False: tiny_dir)
    hp = FTHyperParams.from_hparams(str(write_hparams(tmp_path, "FT", "qwen2.5-0.5b-ft-m.yaml", layers=[2], num_steps=2)))
    assert hp.model_name == "default"
    editor = BaseEditor.from_hparams(hp)
    assert editor.model_name == str(tiny_dir) and hp.model_name == str(tiny_dir)

    plain = tmp_path / "my-local-model"  # no name EasyEdit dispatches on
    shutil.copytree(tiny_dir, plain)
    hp.model_name = str(plain)
    editor = BaseEditor.from_hparams(hp)
    assert editor.model_name == str(plain) and editor.tok.padding_side == "left"
    metrics, _, _ = editor.edit(prompts=PROMPT, target_new=NEW, ground_truth=TRUE, subject=SUBJECT)
    assert "rewrite_acc" in metrics[0]["post"]

    hp.model_name = (editor.model, editor.tok)  # EasyEdit's tuple path gets a string name too
    editor = BaseEditor.from_hparams(hp)
    assert isinstance(editor.model_name, str) and isinstance(hp.model_name, str)


# ----------------------------------------------------------------------------- edits


def test_rome_edit_and_restore(ee, tiny_dir, tmp_path):
    from easyeditor import ROMEHyperParams

    path = write_hparams(
        tmp_path, "ROME", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), layers=[1], v_loss_layer=2,
        mom2_n_samples=len(TINY_TEXTS), context_template_length_params=[[5, 5]], stats_dir=str(tmp_path / "stats"),
    )
    hp = ROMEHyperParams.from_hparams(str(path))
    edit_and_check(ee, hp, "ROME", prepare_kwargs={"texts": TINY_TEXTS, "progress": False})
    assert (tmp_path / "stats" / "tiny-qwen2-model" / "mkeb_heldout_stats").is_dir()


def test_memit_edit_and_restore(ee, tiny_dir, tmp_path):
    from easyeditor import MEMITHyperParams

    path = write_hparams(
        tmp_path, "MEMIT", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), layers=[0, 1], v_loss_layer=2,
        mom2_n_samples=len(TINY_TEXTS), mom2_update_weight=1, clamp_norm_factor=4, stats_dir=str(tmp_path / "stats"),
    )
    hp = MEMITHyperParams.from_hparams(str(path))
    edit_and_check(ee, hp, "MEMIT", prepare_kwargs={"texts": TINY_TEXTS, "progress": False})


@pytest.mark.parametrize("variant", ["ft-l", "ft-m"])
def test_ft_edit_and_restore(ee, tiny_dir, tmp_path, variant):
    from easyeditor import FTHyperParams

    # the shipped file's L-inf bound (2.5e-4, chosen on the default model's dev grid) is far too tight to move a
    # random tiny model; this test is about the edit and restore wiring, so the bound is lifted here
    path = write_hparams(tmp_path, "FT", f"qwen2.5-0.5b-{variant}.yaml", model_name=str(tiny_dir), layers=[2], lr=5e-2,
                         norm_constraint=False)
    edit_and_check(ee, FTHyperParams.from_hparams(str(path)), variant.upper())


def test_lora_edit_and_restore(ee, tiny_dir, tmp_path):
    from easyeditor import LoRAHyperParams

    path = write_hparams(tmp_path, "LoRA", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), num_steps=30, lora_dropout=0.0)
    edit_and_check(ee, LoRAHyperParams.from_hparams(str(path)), "LoRA")


def test_memla_edit_and_restore(ee, tiny_dir, tmp_path):
    from memla_plugin.hparams import MEMLAHyperParams

    path = write_hparams(
        tmp_path, "MEMLA", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), device="cpu", attr_steps=4, max_steps=30, lr=5e-2,
    )
    hp = MEMLAHyperParams.from_hparams(path)
    _, seen, _, _ = edit_and_check(
        ee, hp, "MEMLA", prepare=False, languages=LANGUAGES, edit_lang="en", case_id=7
    )
    assert seen["request"]["languages"] == LANGUAGES  # reached MEMLA through edit()
    assert seen["request"]["edit_lang"] == "en"


def test_mend_trained_in_test_edits_and_restores(ee, tiny_dir, tmp_path):
    from easyeditor import MENDHyperParams

    path = write_hparams(
        tmp_path, "MEND", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), tokenizer_name=str(tiny_dir),
        inner_params=[f"model.layers.2.mlp.{m}_proj.weight" for m in ("gate", "up", "down")],
        rank=16,
    )
    hp = MENDHyperParams.from_hparams(str(path))
    items = [
        {"src": p, "alt": a, "answers": [t], "rephrase": r, "loc": "nq question: Toyota is produced by", "loc_ans": "Japan"}
        for p, a, t, r in [
            (PROMPT, NEW, TRUE, REPHRASE),
            ("The capital of Italy is", "Berlin", "Rome", "Rome is a city in"),
            ("The capital of Germany is", "Paris", "Berlin", "Berlin is a city in"),
        ]
    ] * 4
    metrics, _, _, _ = edit_and_check(
        ee, hp, "MEND",
        prepare_kwargs={
            "train_items": items, "steps": 12, "out_dir": tmp_path / "mend",
            # MEND starts from an identity transform whose edit is a gradient *ascent* step
            # (edit_lr > 0); training turns the learned rates around. A tiny run needs an
            # optimizer step per item and faster rates to get there in 12 steps.
            "training_overrides": {"accumulate_bs": 1, "lr_lr": 1e-2, "lr": 1e-4},
        },
    )
    assert (tmp_path / "mend" / "mend.pt").is_file() and (tmp_path / "mend" / "provenance.json").is_file()
    # every benchmark row of MEND names the checkpoint it edited with (the harness's editor reads it once)
    from memla_mkeb.methods import trained_artifacts
    from memla_plugin.hashing import file_sha256

    assert hp.archive == str(tmp_path / "mend" / "mend.pt")
    assert trained_artifacts("MEND", hp) == {"mend_archive_sha256": file_sha256(tmp_path / "mend" / "mend.pt")}
    assert trained_artifacts("ROME", hp) == {}
    # the budget and the loss curve are recorded (and exported as a small JSON + CSV)
    from memla_plugin.easyedit.mend import write_training_files

    prov = json.loads((tmp_path / "mend" / "provenance.json").read_text())
    assert prov["budget"]["iterations"] == 12 and prov["budget"]["optimizer_updates"] == 12
    assert prov["training_overrides"]["accumulate_bs"] == 1 and prov["budget"]["lr_lr"] == 1e-2
    train = [p for p in prov["curve"] if p["split"] == "train"]
    assert [p["iteration"] for p in train] == [10] and prov["final_train"] == train[-1]  # logged every 10
    assert prov["budget"]["stopped_by"] == "iterations" and prov["max_seconds"] is None  # an iteration budget
    assert math.isfinite(train[-1]["loss/edit"]) and any(p["split"] == "val" for p in prov["curve"])
    js, cs = write_training_files(prov, tmp_path / "export")
    assert json.loads(js.read_text())["budget"] == prov["budget"]
    assert cs.read_text().splitlines()[0].startswith("iteration,seconds,split,loss/edit")
    assert len(cs.read_text().splitlines()) == 1 + len(prov["curve"])
    assert math.isfinite(metrics[0]["post"]["rewrite_acc"][0] if isinstance(metrics[0]["post"]["rewrite_acc"], list) else metrics[0]["post"]["rewrite_acc"])


def test_mkeb_requests_through_edit_requests(ee, tiny_dir, tmp_path):
    """Benchmark records from the MKEB dataset (all 12 languages) edited by MEMLA via edit_requests."""
    from easyeditor import BaseEditor

    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.mkeb import MKEBDataset

    requests = list(MKEBDataset("default", edit_lang="en", test_ids="dev", size=1))
    assert len(requests[0]["languages"]) == 12
    path = write_hparams(
        tmp_path, "MEMLA", "qwen2.5-0.5b.yaml", model_name=str(tiny_dir), device="cpu", attr_steps=2, max_steps=3,
    )
    editor = BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(path))
    before = snapshot(editor.model)
    metrics, _, _ = editor.edit_requests(requests, sequential_edit=False, verbose=False)
    assert "rewrite_acc" in metrics[0]["post"] and metrics[0]["requested_rewrite"]["edit_lang"] == "en"
    assert_bit_identical(editor.model, before)


def test_prepare_collects_rome_and_memit_statistics_in_one_pass(ee, tiny_dir, tiny_tok, tmp_path, monkeypatch):
    """memla-setup's baseline step: ROME's layer and MEMIT's layers in one pass over the corpus."""
    from transformers import AutoModelForCausalLM

    import memla_plugin.models
    from memla_plugin.easyedit import prepare, stats

    hp_dir = tmp_path / "hparams"
    common = {"model_name": str(tiny_dir), "stats_dir": str(tmp_path / "stats"), "mom2_n_samples": 24}
    for alg, layers in (("ROME", [1]), ("MEMIT", [0, 1, 2])):
        (hp_dir / alg).mkdir(parents=True)
        src = write_hparams(tmp_path, alg, "qwen2.5-0.5b.yaml", layers=layers, **common)
        (hp_dir / alg / "qwen2.5-0.5b.yaml").write_text(src.read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    monkeypatch.setattr(memla_plugin.models, "load_model", lambda name: (model, copy.deepcopy(tiny_tok)))
    passes = []
    real = stats.collect_mom2

    def counting(model, tok, modules, texts, **kw):
        passes.append(list(modules))
        return real(model, tok, modules, texts, progress=False)

    monkeypatch.setattr(stats, "collect_mom2", counting)
    seconds = prepare.prepare_all(["ROME", "MEMIT"], hp_dir)
    assert set(seconds) == {"ROME", "MEMIT"}
    assert passes == [[f"model.layers.{l}.mlp.down_proj" for l in (0, 1, 2)]]
    files = sorted(p.name for p in (tmp_path / "stats").rglob("*.npz"))
    assert files == [f"model.layers.{l}.mlp.down_proj_float32_mom2_24.npz" for l in (0, 1, 2)]
    prov = stats.read_provenance(next((tmp_path / "stats").rglob("model.layers.1.*.npz")))
    assert prov["corpus"]["n_records"] == 200 and prov["corpus"]["fallback"] is None  # the train split
