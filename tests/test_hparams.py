"""MEMLAHyperParams: defaults, YAML loading, validation, EasyEdit duck-compatibility."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest

from memla_plugin.errors import HParamsError
from memla_plugin.hparams import MKEB_LANGS, MEMLAHyperParams

PAPER_DEFAULTS = dict(
    alg_name="MEMLA", model_name="default", device="cpu", model_parallel=False, max_length=40,
    batch_size=1, fp16=False, dtype=None, attr_module_tmp=None, edit_module_tmp=None, layers=None,
    attr_steps=20, attr_threshold=0.3, attr_baseline="amig", attr_batch_size=64,
    attr_method="ig",  # integrated gradients (the paper); "atp" is the one-pass estimate
    id_langs=["en", "zh", "fr"], neuron_cache_dir=None, rank_per_neuron=4, use_masks=True,
    use_language_specific=True, use_language_independent=True, lr=1e-3, max_steps=60,
    stop_loss=0.01, stop_prob=0.96, new_loss_weight=2.5, true_loss_weight=2.0, apply_scale=0.5, seed=42,
    # switches of the refined preset, off: the paper's method
    attr_target_form="unspaced", attr_positions="last", likn_min_langs=None, background_dir=None, generic_max_share=None,
    locality_weight=0.0, locality_prompts=8,
    prompt_format="bare",  # how prompts are put to the model (memla_plugin.prompt_format): the paper's code asks bare
    batch_mode="sequential",  # several requests in one call: one after another, as the paper edits (memla_plugin.batch)
    save_adapter_dir=None,  # output switch, not a method constant
)


def test_defaults_are_the_papers_values_and_nothing_else():
    hp = MEMLAHyperParams()
    assert hp.to_dict() == PAPER_DEFAULTS
    assert [f.name for f in dataclasses.fields(hp)] == list(PAPER_DEFAULTS)


def test_id_langs_default_is_not_shared_between_instances():
    a, b = MEMLAHyperParams(), MEMLAHyperParams()
    a.id_langs.append("de")
    assert b.id_langs == ["en", "zh", "fr"]


def _write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_from_hparams_with_and_without_suffix_and_scientific_strings(tmp_path):
    path = _write(tmp_path, """
        alg_name: MEMLA
        model_name: ./Qwen2.5-Coder-0.5B-Instruct
        device: 0
        lr: 1e-3
        stop_loss: 1e-2
        apply_scale: "0.25"
        max_steps: 30
        id_langs: [en, zh]
        layers: [10, 11]
        attr_baseline: zero
    """)
    for arg in (path, str(path), str(path)[: -len(".yaml")]):
        hp = MEMLAHyperParams.from_hparams(arg)
        assert hp.lr == 1e-3 and isinstance(hp.lr, float)
        assert hp.stop_loss == 0.01 and hp.apply_scale == 0.25
        assert hp.max_steps == 30 and hp.id_langs == ["en", "zh"] and hp.layers == [10, 11]
        assert hp.device == 0 and hp.attr_baseline == "zero"
        assert hp.model_name == "./Qwen2.5-Coder-0.5B-Instruct"


def test_unknown_keys_are_rejected_by_name(tmp_path):
    path = _write(tmp_path, "alg_name: MEMLA\nlearning_rate: 0.1\nrank: 8\n")
    with pytest.raises(HParamsError) as err:
        MEMLAHyperParams.from_hparams(path)
    assert "learning_rate" in str(err.value) and "rank" in str(err.value)
    assert str(path) in str(err.value)


def test_wrong_alg_name_is_rejected(tmp_path):
    path = _write(tmp_path, "alg_name: ROME\nlr: 1e-3\n")
    with pytest.raises(HParamsError, match="ROME"):
        MEMLAHyperParams.from_hparams(path)
    with pytest.raises(HParamsError, match="alg_name"):
        MEMLAHyperParams(alg_name="LoRA")


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(HParamsError, match="not found"):
        MEMLAHyperParams.from_hparams(tmp_path / "nope")
    with pytest.raises(HParamsError, match="mapping"):
        MEMLAHyperParams.from_hparams(_write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize(
    "bad, needle",
    [
        (dict(attr_baseline="integrated"), "attr_baseline"),
        (dict(id_langs=["en", "xx"]), "xx"),
        (dict(id_langs=[]), "id_langs"),
        (dict(id_langs=["en", "en"]), "twice"),
        (dict(max_steps=0), "max_steps"),
        (dict(attr_steps=-1), "attr_steps"),
        (dict(rank_per_neuron=0), "rank_per_neuron"),
        (dict(lr=0.0), "lr"),
        (dict(lr="fast"), "lr"),
        (dict(stop_prob=1.5), "stop_prob"),
        (dict(attr_threshold=2.0), "attr_threshold"),
        (dict(device="gpu"), "device"),
        (dict(device="cuda:x"), "device"),
        (dict(device=True), "device"),
        (dict(dtype="float64"), "dtype"),
        (dict(layers=[1, -2]), "layers"),
        (dict(layers=[]), "layers"),
        (dict(edit_module_tmp="model.layers.mlp"), "edit_module_tmp"),
        (dict(use_masks="yes"), "use_masks"),
        (dict(max_steps=2.5), "max_steps"),
        (dict(use_language_specific=False, use_language_independent=False), "nothing to train"),
        (dict(new_loss_weight=0, true_loss_weight=0), "nothing to train"),
    ],
)
def test_invalid_values_are_named(bad, needle):
    with pytest.raises(HParamsError, match=needle):
        MEMLAHyperParams(**bad)


def test_invalid_value_from_file_names_file_and_key(tmp_path):
    path = _write(tmp_path, "alg_name: MEMLA\nid_langs: [en, klingon]\n")
    with pytest.raises(HParamsError) as err:
        MEMLAHyperParams.from_hparams(path)
    assert "klingon" in str(err.value) and str(path) in str(err.value)


def test_all_mkeb_languages_are_valid_id_langs():
    assert MEMLAHyperParams(id_langs=list(MKEB_LANGS)).id_langs == list(MKEB_LANGS)


@pytest.mark.parametrize(
    "device, expected",
    [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), (0, "cuda:0"), (3, "cuda:3"), ("2", "cuda:2")],
)
def test_devices(device, expected):
    import torch

    hp = MEMLAHyperParams(device=device)
    assert hp.torch_device() == torch.device(expected)


def test_dtype_and_fp16():
    import torch

    assert MEMLAHyperParams().torch_dtype() is None
    assert MEMLAHyperParams(fp16=True).torch_dtype() is torch.float16
    assert MEMLAHyperParams(dtype="bfloat16").torch_dtype() is torch.bfloat16


def test_easyedit_surface():
    """What EasyEdit's BaseEditor and HyperParams users touch, without importing EasyEdit."""
    hp = MEMLAHyperParams(model_name="gpt2-xl")
    for attr in ("alg_name", "model_name", "device", "model_parallel", "max_length", "batch_size", "fp16"):
        assert hasattr(hp, attr)
    cfg = MEMLAHyperParams.construct_float_from_scientific_notation({"lr": "5e-4", "model_name": "1e5", "seed": 1})
    assert cfg == {"lr": 5e-4, "model_name": "1e5", "seed": 1}
    assert MEMLAHyperParams(**hp.to_dict()) == hp
    assert hp.replace(lr="1e-2").lr == 0.01
    with pytest.raises(HParamsError, match="bogus"):
        hp.replace(bogus=1)


def test_from_json(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('{"alg_name": "MEMLA", "lr": "2e-3", "seed": 7}')
    hp = MEMLAHyperParams.from_json(path)
    assert hp.lr == 2e-3 and hp.seed == 7


def test_import_is_light_and_works_without_easyeditor():
    """`import memla_plugin` neither needs nor imports EasyEdit (nor torch)."""
    code = textwrap.dedent("""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "easyeditor" or name.startswith("easyeditor."):
                    raise ImportError("easyeditor is not installed here")
        sys.meta_path.insert(0, Block())
        import memla_plugin
        assert "easyeditor" not in sys.modules, "easyeditor imported"
        assert "torch" not in sys.modules, "torch imported by import memla_plugin"
        hp = memla_plugin.MEMLAHyperParams()
        assert "torch" not in sys.modules, "torch imported by the hparams"
        from memla_plugin import apply_memla_to_model
        assert "easyeditor" not in sys.modules
        print("ok", hp.alg_name)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok MEMLA"
