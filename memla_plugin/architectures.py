"""Per-architecture module names: the one table attribution, training and editing read.

MEMLA needs, per transformer layer, the module whose output is the FFN pre-activation
(attribution, MEMLA paper §3.1) and the FFN down-projection it edits (§3.3). The fast
attribution (:mod:`memla_plugin.neurons.stack`) and the training's lower-layer replay
(:mod:`memla_plugin.training`) also need the decoder-layer list, the final norm, the rotary
embedding and the norm in front of the FFN. All of it is one :class:`ArchLayout` per
``config.model_type``; hparams may override the two module templates, as EasyEdit's method
hparams do (``rewrite_module_tmp`` and friends), which is how an unknown model is supported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import UnknownArchitectureError


@dataclass(frozen=True)
class ArchLayout:
    """Where the parts of one model family live (dotted paths; ``{}`` is the layer index).

    ``ffn_norm`` is set only for families whose layer computes
    ``mid = x + attn(norm1(x)); out = mid + ffn(ffn_norm(mid))``: that is what lets the fast
    attribution rebuild a patched layer from its FFN alone. Families without it use the
    reference attribution.
    """

    layers: str
    attr_module: str
    edit_module: str
    final_norm: Optional[str] = None
    rotary: Optional[str] = None
    ffn_norm: Optional[str] = None

    @property
    def attr_module_tmp(self) -> str:
        return f"{self.layers}.{{}}.{self.attr_module}"

    @property
    def edit_module_tmp(self) -> str:
        return f"{self.layers}.{{}}.{self.edit_module}"


_GPT2 = ArchLayout("transformer.h", "mlp.c_fc", "mlp.c_proj", final_norm="transformer.ln_f", ffn_norm="ln_2")
_LLAMA = ArchLayout("model.layers", "mlp.gate_proj", "mlp.down_proj", final_norm="model.norm",
                    rotary="model.rotary_emb", ffn_norm="post_attention_layernorm")
# Gemma layers normalise around the FFN differently (gemma2/3 add a post-FFN norm): no ffn_norm here
_GEMMA = ArchLayout("model.layers", "mlp.gate_proj", "mlp.down_proj")
_GEMMA3_MM = ArchLayout("model.language_model.layers", "mlp.gate_proj", "mlp.down_proj")

#: model_type -> layout
KNOWN_ARCHITECTURES: dict[str, ArchLayout] = {
    "gpt2": _GPT2,  # GPT-2 and mGPT (ai-forever/mGPT declares model_type gpt2)
    "llama": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "mistral": _LLAMA,
    "gemma": _GEMMA,
    "gemma2": _GEMMA,
    "gemma3_text": _GEMMA,
    "gemma3": _GEMMA3_MM,
}


@dataclass(frozen=True)
class ArchSpec:
    """Resolved module layout of one model.

    The decoder-stack parts (final norm, rotary embedding, FFN norm) are in ``layout_of(model_type)``.
    """

    model_type: str
    num_layers: int
    attr_module_tmp: str
    edit_module_tmp: str

    def attr_module(self, layer: int) -> str:
        return self.attr_module_tmp.format(layer)

    def edit_module(self, layer: int) -> str:
        return self.edit_module_tmp.format(layer)


def layout_of(model_type: str) -> Optional[ArchLayout]:
    """The table entry of ``model_type``, None for an architecture the table does not know."""
    return KNOWN_ARCHITECTURES.get(model_type)


def layers_path(edit_module_tmp: str) -> Optional[str]:
    """The decoder-layer list's path for an edit template: the table's, else the part before ``.{}``."""
    for layout in KNOWN_ARCHITECTURES.values():
        if layout.edit_module_tmp == edit_module_tmp:
            return layout.layers
    if ".{}" not in edit_module_tmp:
        return None
    return edit_module_tmp.split(".{}")[0]


def layer_list(model, edit_module_tmp: str):
    """The ``nn.ModuleList`` of decoder layers holding the edited modules, or None."""
    from torch import nn

    path = layers_path(edit_module_tmp)
    if path is None:
        return None
    try:
        layers = model.get_submodule(path)
    except AttributeError:
        return None
    return layers if isinstance(layers, nn.ModuleList) else None


def _count_layers(model, attr_tmp: str, path: Optional[str] = None) -> int:
    if path is not None:
        try:
            return len(model.get_submodule(path))
        except AttributeError:
            pass
    n = 0
    while True:
        try:
            model.get_submodule(attr_tmp.format(n))
        except AttributeError:
            return n
        n += 1


def _check_template(model, tmp: str, key: str, model_type: str, n: int) -> None:
    try:
        model.get_submodule(tmp.format(0))
        if n > 0:
            model.get_submodule(tmp.format(n - 1))
    except AttributeError:
        raise UnknownArchitectureError(
            f"{key}={tmp!r} does not name a module of this {model_type!r} model "
            f"(tried layers 0 and {n - 1}); fix {key} in the hparams"
        ) from None


def resolve_architecture(
    model,
    attr_module_tmp: Optional[str] = None,
    edit_module_tmp: Optional[str] = None,
    num_layers: Optional[int] = None,
) -> ArchSpec:
    """Find the attribution and edit modules of ``model``.

    Explicit templates (from hparams) win over the table. Raises
    :class:`UnknownArchitectureError` naming the model type and the hparams keys to set
    when neither resolves to real modules.
    """
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", type(model).__name__))
    known = KNOWN_ARCHITECTURES.get(model_type)
    if known is not None:  # the table fills what the hparams leave unset
        if attr_module_tmp is None and num_layers is None:
            num_layers = _count_layers(model, known.attr_module_tmp, known.layers)
        attr_module_tmp = attr_module_tmp or known.attr_module_tmp
        edit_module_tmp = edit_module_tmp or known.edit_module_tmp
    if attr_module_tmp is None or edit_module_tmp is None:
        raise UnknownArchitectureError(
            f"architecture {model_type!r} has no known FFN module names "
            f"(known: {', '.join(sorted(KNOWN_ARCHITECTURES))}); set attr_module_tmp and "
            f"edit_module_tmp in the hparams, e.g. 'model.layers.{{}}.mlp.gate_proj' and "
            f"'model.layers.{{}}.mlp.down_proj'"
        )
    n = num_layers if num_layers is not None else _count_layers(model, attr_module_tmp)
    _check_template(model, attr_module_tmp, "attr_module_tmp", model_type, n)
    _check_template(model, edit_module_tmp, "edit_module_tmp", model_type, n)
    if n == 0:
        raise UnknownArchitectureError(f"no transformer layers found in {model_type!r} model via {attr_module_tmp!r}")
    return ArchSpec(model_type=model_type, num_layers=n, attr_module_tmp=attr_module_tmp,
                    edit_module_tmp=edit_module_tmp)
