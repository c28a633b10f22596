"""Direct access to a causal LM's decoder stack, for running layers l..L on a few positions.

The fast attribution needs to start a forward pass in the middle of the model (layer l, last
prompt position onward) with the earlier positions' keys/values taken from a previous pass,
and to run packed sequences with its own attention masks. Transformers has no public API
for that, so this module drives the decoder layers by hand, reading where the layers, the
final norm, the rotary embedding and the FFN's norm live from the architecture table
(:mod:`memla_plugin.architectures`). Families without those entries return ``None`` and
callers fall back to the reference implementation.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

import torch

from ..architectures import layout_of

class PrefixKV:
    """Read-only stand-in for a transformers ``Cache``: prepends cached prefix keys/values.

    Attention modules call ``update(keys, values, layer_idx, ...)`` and attend over what it
    returns; here that is the prefix (shared by every batch row) followed by the new
    positions. Nothing is stored, so one object serves batches of any size.
    """

    def __init__(self, keys: dict[int, torch.Tensor], values: dict[int, torch.Tensor]):
        self.keys, self.values = keys, values

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        b = key_states.shape[0]
        pk, pv = self.keys[layer_idx], self.values[layer_idx]
        if pk.shape[-2] == 0:
            return key_states, value_states
        k = torch.cat([pk.expand(b, -1, -1, -1), key_states], dim=-2)
        v = torch.cat([pv.expand(b, -1, -1, -1), value_states], dim=-2)
        return k, v


@dataclass
class DecoderStack:
    """The parts of a causal LM the fast path drives by hand."""

    model_type: str
    layers: torch.nn.ModuleList
    layers_path: str
    norm: torch.nn.Module
    lm_head: torch.nn.Module
    rotary: Optional[torch.nn.Module]
    cache_kwarg: str
    ffn_norm_name: str
    ffn_paths: list[str]  # per layer: the FFN module that owns the attribution module

    def ffn_norm(self, idx: int) -> torch.nn.Module:
        return getattr(self.layers[idx], self.ffn_norm_name)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def max_positions(self) -> Optional[int]:
        """Smallest sliding window of any layer (None: unlimited); longer inputs need the reference."""
        wins = []
        for layer in self.layers:
            attn = getattr(layer, "self_attn", None) or getattr(layer, "attn", None)
            w = getattr(attn, "sliding_window", None)
            if isinstance(w, int) and w > 0:
                wins.append(w)
        return min(wins) if wins else None

    def causal_mask(self, prefix: int, n: int, dtype, device) -> torch.Tensor:
        """Additive mask [1, 1, n, prefix + n]: new position i sees the prefix and new positions <= i."""
        allowed = torch.ones(n, prefix + n, dtype=torch.bool, device=device)
        allowed[:, prefix:] = torch.tril(torch.ones(n, n, dtype=torch.bool, device=device))
        mask = torch.zeros(n, prefix + n, dtype=dtype, device=device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        return mask.view(1, 1, n, prefix + n)

    def rope(self, hidden: torch.Tensor, position_ids: torch.Tensor):
        """((cos, sin), position_ids) for rotary models; (None, None) for learned positions (GPT-2)."""
        if self.rotary is None:
            return None, None
        return self.rotary(hidden, position_ids), position_ids

    def run_layer(self, idx: int, hidden, kv, mask, rope) -> torch.Tensor:
        emb, pos = rope
        kwargs = {self.cache_kwarg: kv, "attention_mask": mask, "use_cache": False}
        if emb is not None:
            kwargs["position_embeddings"] = emb
            kwargs["position_ids"] = pos
        out = self.layers[idx](hidden, **kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out


def _cache_kwarg(layer: torch.nn.Module) -> Optional[str]:
    params = inspect.signature(layer.forward).parameters
    for name in ("past_key_values", "past_key_value", "layer_past"):
        if name in params:
            return name
    return None


def resolve_stack(model, arch) -> Optional[DecoderStack]:
    """The model's :class:`DecoderStack`, or None when the fast path cannot drive this model."""
    layout = layout_of(arch.model_type)
    if layout is None or layout.ffn_norm is None or layout.final_norm is None:
        return None
    if getattr(model.config, "add_cross_attention", False):
        return None
    # the explicit 4-D additive mask below is understood by the eager and SDPA kernels only
    if getattr(model.config, "_attn_implementation", None) not in (None, "eager", "sdpa"):
        return None
    layers_path, norm_path, rotary_path, ffn_norm_name = layout.layers, layout.final_norm, layout.rotary, layout.ffn_norm
    try:
        layers = model.get_submodule(layers_path)
        norm = model.get_submodule(norm_path)
        rotary = model.get_submodule(rotary_path) if rotary_path else None
    except AttributeError:
        return None
    lm_head = model.get_output_embeddings()
    if lm_head is None or len(layers) != arch.num_layers:
        return None
    for l in (0, arch.num_layers - 1):  # the attribution module must live inside layer l
        if not arch.attr_module(l).startswith(f"{layers_path}.{l}."):
            return None
    kwarg = _cache_kwarg(layers[0])
    if kwarg is None or not all(hasattr(layer, ffn_norm_name) for layer in layers):
        return None
    ffn_paths = [arch.attr_module(l).rsplit(".", 1)[0] for l in range(arch.num_layers)]
    if any(not p.startswith(f"{layers_path}.{l}.") for l, p in enumerate(ffn_paths)):
        return None
    return DecoderStack(arch.model_type, layers, layers_path, norm, lm_head, rotary, kwarg, ffn_norm_name, ffn_paths)
