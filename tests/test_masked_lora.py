"""Masked dual LoRA math (paper §3.3) and its wiring into nn.Linear / GPT-2 Conv1D."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from memla_plugin.errors import HParamsError, UnknownArchitectureError
from memla_plugin.masked_lora import MaskedDualLoRA, MaskedLoRAConfig, MaskedLoRAModel, merge_update, module_kind
from memla_plugin.masked_lora.model import ffn_dims, to_weight_layout

D_FF, D = 12, 5


def _randomise(editor: MaskedDualLoRA, seed: int = 0) -> None:
    """Stand-in for training: give B non-zero values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in editor.named_parameters():
            if name.startswith("B_"):
                p.copy_(torch.randn(p.shape, generator=g))


def test_shapes_init_and_zero_update_before_training():
    torch.manual_seed(0)
    ed = MaskedDualLoRA(D_FF, D, specific=[1, 4], independent=[7], rank_per_neuron=4)
    assert ed.subeditors == ["specific", "independent"]
    assert ed.B_specific.shape == (D_FF, 8) and ed.A_specific.shape == (8, D)
    assert ed.B_independent.shape == (D_FF, 4) and ed.A_independent.shape == (4, D)
    assert torch.count_nonzero(ed.B_specific) == 0 and torch.count_nonzero(ed.B_independent) == 0
    assert ed.A_specific.std() > 0.3  # drawn from N(0, 1), not a scaled-down init
    delta = ed.delta()
    assert delta.shape == (D_FF, D) and torch.count_nonzero(delta) == 0
    assert torch.count_nonzero(ed(torch.randn(3, D_FF))) == 0


def test_rank_scales_with_neurons_and_absent_sets_get_no_editor():
    ed = MaskedDualLoRA(D_FF, D, specific=[0, 1, 2], independent=[], rank_per_neuron=2)
    assert ed.subeditors == ["specific"]
    assert ed.A_specific.shape[0] == 6
    assert not hasattr(ed, "A_independent")
    assert sorted(n for n, _ in ed.named_parameters()) == ["A_specific", "B_specific"]


def test_mask_rows_and_delta_formula():
    torch.manual_seed(1)
    ed = MaskedDualLoRA(D_FF, D, specific=[2, 3], independent=[3, 9], rank_per_neuron=1)
    _randomise(ed)
    m_s, m_i = ed.mask("specific"), ed.mask("independent")
    assert m_s.shape == (D_FF, D)
    assert torch.equal(m_s.sum(1).nonzero().flatten(), torch.tensor([2, 3]))
    assert torch.equal(m_i.sum(1).nonzero().flatten(), torch.tensor([3, 9]))
    assert set(m_s.unique().tolist()) == {0.0, 1.0}
    expected = (ed.B_specific @ ed.A_specific) * m_s + (ed.B_independent @ ed.A_independent) * m_i
    torch.testing.assert_close(ed.delta(), expected)
    nonzero_rows = ed.delta().abs().sum(1).nonzero().flatten().tolist()
    assert nonzero_rows == [2, 3, 9]
    u = torch.randn(4, 6, D_FF)
    torch.testing.assert_close(ed(u), u @ ed.delta(), rtol=1e-5, atol=1e-5)


def test_without_masks_every_row_may_change():
    torch.manual_seed(2)
    ed = MaskedDualLoRA(D_FF, D, specific=[2], rank_per_neuron=2, use_masks=False)
    _randomise(ed)
    assert torch.equal(ed.mask("specific"), torch.ones(D_FF, D))
    assert (ed.delta().abs().sum(1) > 0).all()
    assert ed.touched_rows().all()
    torch.testing.assert_close(ed.delta(), ed.B_specific @ ed.A_specific)


def test_neuron_out_of_range():
    with pytest.raises(IndexError):
        MaskedDualLoRA(D_FF, D, specific=[D_FF])


def test_config_normalises_and_validates():
    cfg = MaskedLoRAConfig(specific={"2": {5, 1, 1}, 0: []}, independent={1: [3]})
    assert cfg.specific == {2: [1, 5]} and cfg.layers == [1, 2]
    assert cfg.n_specific == 2 and cfg.n_independent == 1
    assert MaskedLoRAConfig().is_empty()
    with pytest.raises(HParamsError):
        MaskedLoRAConfig(rank_per_neuron=0)
    with pytest.raises(HParamsError):
        MaskedLoRAConfig(init="kaiming")


class _Block(nn.Module):
    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj


class _Net(nn.Module):
    """Stand-in model: `layers.{i}.proj` is the down-projection."""

    def __init__(self, projs):
        super().__init__()
        self.layers = nn.ModuleList(_Block(p) for p in projs)

    def forward(self, u):
        return torch.stack([blk.proj(u) for blk in self.layers])


def _twin_nets():
    """The same weights as nn.Linear (W^T) and as Conv1D (W)."""
    torch.manual_seed(3)
    linears = [nn.Linear(D_FF, D) for _ in range(2)]
    convs = []
    for lin in linears:
        conv = Conv1D(D, D_FF)
        with torch.no_grad():
            conv.weight.copy_(lin.weight.t())
            conv.bias.copy_(lin.bias)
        convs.append(conv)
    return _Net(linears), _Net(convs)


def test_module_kind_and_dims():
    lin_net, conv_net = _twin_nets()
    assert module_kind(lin_net.layers[0].proj) == "linear"
    assert module_kind(conv_net.layers[0].proj) == "conv1d"
    assert ffn_dims(lin_net.layers[0].proj) == (D_FF, D) == ffn_dims(conv_net.layers[0].proj)
    with pytest.raises(UnknownArchitectureError, match="Embedding"):
        module_kind(nn.Embedding(3, 3))


def test_linear_and_conv1d_paths_agree_in_forward_and_merge():
    lin_net, conv_net = _twin_nets()
    cfg = MaskedLoRAConfig(specific={0: [1, 2], 1: [5]}, independent={1: [5, 8]}, rank_per_neuron=2)
    lora_lin = MaskedLoRAModel(lin_net, cfg, "layers.{}.proj", seed=11)
    lora_conv = MaskedLoRAModel(conv_net, cfg, "layers.{}.proj", seed=11)
    for ed_l, ed_c in zip(lora_lin.editors.values(), lora_conv.editors.values()):
        _randomise(ed_l, 5)
        _randomise(ed_c, 5)
        torch.testing.assert_close(ed_l.delta(), ed_c.delta(), rtol=0, atol=0)
    u = torch.randn(3, D_FF)
    with torch.no_grad():
        base = lin_net(u)
        with lora_lin, lora_conv:
            out_l, out_c = lin_net(u), conv_net(u)
        torch.testing.assert_close(out_l, out_c, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out_l, base)
        # hooks gone after the context: outputs are the originals again, bit for bit
        assert torch.equal(lin_net(u), base)
    upd_l, upd_c = lora_lin.weight_updates(0.5), lora_conv.weight_updates(0.5)
    for name in upd_l:
        assert upd_l[name].shape == (D, D_FF) and upd_c[name].shape == (D_FF, D)
        torch.testing.assert_close(upd_l[name], upd_c[name].t(), rtol=0, atol=0)
    orig_l, orig_c = lora_lin.merge(0.5), lora_conv.merge(0.5)
    for i in range(2):
        torch.testing.assert_close(lin_net.layers[i].proj.weight, conv_net.layers[i].proj.weight.t(), rtol=0, atol=0)
        name = f"layers.{i}.proj.weight"
        assert torch.equal(orig_l[name].t(), orig_c[name])


def test_merge_changes_only_selected_rows_or_columns_and_returns_originals():
    lin_net, conv_net = _twin_nets()
    cfg = MaskedLoRAConfig(specific={1: [4, 6]}, independent={1: [6, 10]})
    for net, kind in ((lin_net, "linear"), (conv_net, "conv1d")):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        lora = MaskedLoRAModel(net, cfg, "layers.{}.proj", seed=0)
        for ed in lora.editors.values():
            _randomise(ed)
        originals = lora.merge(1.0)
        assert list(originals) == ["layers.1.proj.weight"]
        assert torch.equal(originals["layers.1.proj.weight"], before["layers.1.proj.weight"])
        after = net.state_dict()
        for key in before:
            if key != "layers.1.proj.weight":
                assert torch.equal(after[key], before[key]), key
        diff = (after["layers.1.proj.weight"] != before["layers.1.proj.weight"])
        neuron_axis = 1 if kind == "linear" else 0  # Linear: columns; Conv1D: rows
        changed = diff.any(dim=1 - neuron_axis).nonzero().flatten().tolist()
        assert changed == [4, 6, 10]
        assert not lora.attached


def test_merge_update_is_bit_exact_where_update_is_zero():
    w = torch.tensor([[-0.0, 1.0], [2.0, -0.0]])
    merge_update(w, torch.tensor([[0.0, 0.5], [0.0, 0.0]]))
    assert torch.equal(w, torch.tensor([[-0.0, 1.5], [2.0, -0.0]]))
    assert torch.signbit(w[0, 0]) and torch.signbit(w[1, 1])  # -0.0 stays -0.0
    with pytest.raises(ValueError):
        merge_update(w, torch.zeros(3, 3))


def test_to_weight_layout():
    lin_net, conv_net = _twin_nets()
    delta = torch.randn(D_FF, D)
    assert torch.equal(to_weight_layout(lin_net.layers[0].proj, delta), delta.t())
    assert torch.equal(to_weight_layout(conv_net.layers[0].proj, delta), delta)


def test_missing_edit_module_is_named():
    lin_net, _ = _twin_nets()
    with pytest.raises(UnknownArchitectureError, match="layers.5.proj"):
        MaskedLoRAModel(lin_net, MaskedLoRAConfig(specific={5: [0]}), "layers.{}.proj")


def test_seed_makes_init_reproducible():
    lin_net, _ = _twin_nets()
    cfg = MaskedLoRAConfig(specific={0: [1]}, independent={1: [2]})
    a = MaskedLoRAModel(lin_net, cfg, "layers.{}.proj", seed=5)
    b = MaskedLoRAModel(lin_net, cfg, "layers.{}.proj", seed=5)
    c = MaskedLoRAModel(lin_net, cfg, "layers.{}.proj", seed=6)
    pa, pb, pc = (dict(x.named_parameters()) for x in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


def test_real_gpt2_and_qwen2_modules(gpt2_model, qwen2_model):
    assert module_kind(gpt2_model.get_submodule("transformer.h.0.mlp.c_proj")) == "conv1d"
    assert module_kind(qwen2_model.get_submodule("model.layers.0.mlp.down_proj")) == "linear"
    from conftest import TINY_DIMS

    dims = (TINY_DIMS["d_ff"], TINY_DIMS["d"])
    assert ffn_dims(gpt2_model.get_submodule("transformer.h.0.mlp.c_proj")) == dims
    assert ffn_dims(qwen2_model.get_submodule("model.layers.0.mlp.down_proj")) == dims
