"""Architecture resolution on tiny random models of every supported family.

Each family is built from a config in the test (no download): GPT-2 (mGPT declares
model_type gpt2), Llama, Qwen2, Mistral, Gemma-3 text-only (Gemma3ForCausalLM with
Gemma3TextConfig) and Gemma-3 multimodal (Gemma3ForConditionalGeneration). For each we
check the layer count, that the attribution module outputs the d_ff FFN pre-activation
and that the edited module is the down-projection reading d_ff.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from memla_plugin.architectures import KNOWN_ARCHITECTURES, resolve_architecture
from memla_plugin.errors import UnknownArchitectureError
from memla_plugin.hparams import MEMLAHyperParams

D, D_FF, N_LAYERS, VOCAB = 16, 40, 3, 96


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=D, n_layer=N_LAYERS, n_head=2, n_inner=D_FF))


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=D_FF, num_hidden_layers=N_LAYERS,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32))


def _qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=D, intermediate_size=D_FF, num_hidden_layers=N_LAYERS,
                                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32))


def _mistral():
    from transformers import MistralConfig, MistralForCausalLM

    return MistralForCausalLM(MistralConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=D_FF, num_hidden_layers=N_LAYERS,
                                            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32))


def _gemma3_text_config():
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=D_FF, num_hidden_layers=N_LAYERS,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=32)


def _gemma3_text():
    from transformers import Gemma3ForCausalLM

    return Gemma3ForCausalLM(_gemma3_text_config())


def _gemma3_multimodal():
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    return Gemma3ForConditionalGeneration(
        Gemma3Config(text_config=_gemma3_text_config().to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)
    )


FAMILIES = {
    # name: (builder, expected model_type, attr template, edit template)
    "gpt2/mGPT": (_gpt2, "gpt2", "transformer.h.{}.mlp.c_fc", "transformer.h.{}.mlp.c_proj"),
    "llama": (_llama, "llama", "model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.down_proj"),
    "qwen2": (_qwen2, "qwen2", "model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.down_proj"),
    "mistral": (_mistral, "mistral", "model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.down_proj"),
    "gemma3 (text)": (_gemma3_text, "gemma3_text", "model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.down_proj"),
    "gemma3 (multimodal)": (_gemma3_multimodal, "gemma3", "model.language_model.layers.{}.mlp.gate_proj",
                            "model.language_model.layers.{}.mlp.down_proj"),
}


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {name: spec[0]().eval() for name, spec in FAMILIES.items()}


def _in_out(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or a GPT-2 Conv1D (whose weight is in x out)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    w = module.weight
    assert type(module).__name__ == "Conv1D", type(module)
    return w.shape[0], w.shape[1]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resolves_each_family(built, family):
    _, model_type, attr_tmp, edit_tmp = FAMILIES[family]
    model = built[family]
    arch = resolve_architecture(model)
    assert arch.model_type == model_type
    assert arch.num_layers == N_LAYERS
    assert (arch.attr_module_tmp, arch.edit_module_tmp) == (attr_tmp, edit_tmp)
    for layer in range(N_LAYERS):
        attr = model.get_submodule(arch.attr_module(layer))
        edit = model.get_submodule(arch.edit_module(layer))
        assert _in_out(attr) == (D, D_FF)  # FFN pre-activation: d -> d_ff
        assert _in_out(edit) == (D_FF, D)  # down-projection: d_ff -> d
    if model_type == "gpt2":
        assert type(model.get_submodule(arch.edit_module(0))).__name__ == "Conv1D"
    else:
        assert isinstance(model.get_submodule(arch.edit_module(0)), nn.Linear)


@pytest.mark.parametrize("family", ["gpt2/mGPT", "qwen2", "gemma3 (text)"])
def test_attr_module_sees_last_position_pre_activation(built, family):
    """A forward hook on the resolved attribution module yields [batch, seq, d_ff]."""
    model = built[family]
    arch = resolve_architecture(model)
    seen = []
    handle = model.get_submodule(arch.attr_module(N_LAYERS - 1)).register_forward_hook(
        lambda mod, inp, out: seen.append(out.shape)
    )
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    finally:
        handle.remove()
    assert seen == [torch.Size([1, 4, D_FF])]


def test_table_covers_the_supported_families():
    for model_type in ("gpt2", "llama", "qwen2", "mistral", "gemma3", "gemma3_text"):
        assert model_type in KNOWN_ARCHITECTURES


def _opt():
    from transformers import OPTConfig, OPTForCausalLM

    return OPTForCausalLM(OPTConfig(vocab_size=VOCAB, hidden_size=D, ffn_dim=D_FF, num_hidden_layers=N_LAYERS,
                                    num_attention_heads=2, word_embed_proj_dim=D, max_position_embeddings=32)).eval()


def test_unknown_family_is_a_named_error_naming_the_hparams_keys():
    with pytest.raises(UnknownArchitectureError) as info:
        resolve_architecture(_opt())
    msg = str(info.value)
    assert "'opt'" in msg and "attr_module_tmp" in msg and "edit_module_tmp" in msg


def test_unknown_family_supported_through_hparams_overrides():
    hp = MEMLAHyperParams(attr_module_tmp="model.decoder.layers.{}.fc1", edit_module_tmp="model.decoder.layers.{}.fc2")
    model = _opt()
    arch = resolve_architecture(model, hp.attr_module_tmp, hp.edit_module_tmp)
    assert arch.model_type == "opt" and arch.num_layers == N_LAYERS
    assert _in_out(model.get_submodule(arch.edit_module(N_LAYERS - 1))) == (D_FF, D)


def test_overrides_win_over_the_table(built):
    # attribute on up_proj instead of gate_proj (both d -> d_ff), e.g. for an ablation
    arch = resolve_architecture(built["qwen2"], attr_module_tmp="model.layers.{}.mlp.up_proj")
    assert arch.attr_module(1) == "model.layers.1.mlp.up_proj"
    assert arch.edit_module(1) == "model.layers.1.mlp.down_proj"
    assert arch.num_layers == N_LAYERS


def test_num_layers_override(built):
    assert resolve_architecture(built["llama"], num_layers=2).num_layers == 2


def test_wrong_override_is_a_named_error(built):
    with pytest.raises(UnknownArchitectureError, match="edit_module_tmp"):
        resolve_architecture(built["llama"], edit_module_tmp="model.layers.{}.mlp.nonexistent")
