"""Per-architecture module names: where MEMLA reads FFN activations and what it edits.

MEMLA needs two modules per transformer layer: the one whose output is the FFN
pre-activation (attribution, DESIGN §3.1) and the FFN down-projection it edits (§3.3).
They are found from ``config.model_type``; hparams may override both templates, which is
how an architecture outside this table is supported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import UnknownArchitectureError

# model_type -> (attribution module template, edited module template, layer-list path)
_GPT2 = ("transformer.h.{}.mlp.c_fc", "transformer.h.{}.mlp.c_proj", "transformer.h")
_LLAMA = ("model.layers.{}.mlp.gate_proj", "model.layers.{}.mlp.down_proj", "model.layers")
_GEMMA3_MM = (
    "model.language_model.layers.{}.mlp.gate_proj",
    "model.language_model.layers.{}.mlp.down_proj",
    "model.language_model.layers",
)

KNOWN_ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "gpt2": _GPT2,  # GPT-2 and mGPT (ai-forever/mGPT declares model_type gpt2)
    "llama": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "mistral": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _LLAMA,
    "gemma3_text": _LLAMA,
    "gemma3": _GEMMA3_MM,
}


@dataclass(frozen=True)
class ArchSpec:
    """Resolved module layout of one model."""

    model_type: str
    num_layers: int
    attr_module_tmp: str
    edit_module_tmp: str

    def attr_module(self, layer: int) -> str:
        return self.attr_module_tmp.format(layer)

    def edit_module(self, layer: int) -> str:
        return self.edit_module_tmp.format(layer)


def _count_layers(model, layers_path: Optional[str], attr_tmp: str) -> int:
    if layers_path is not None:
        try:
            return len(model.get_submodule(layers_path))
        except AttributeError:
            pass
    n = 0
    while True:
        try:
            model.get_submodule(attr_tmp.format(n))
        except AttributeError:
            return n
        n += 1


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
    attr_tmp = attr_module_tmp or (known[0] if known else None)
    edit_tmp = edit_module_tmp or (known[1] if known else None)
    if attr_tmp is None or edit_tmp is None:
        raise UnknownArchitectureError(
            f"architecture {model_type!r} has no known FFN module names "
            f"(known: {', '.join(sorted(KNOWN_ARCHITECTURES))}); set attr_module_tmp and "
            f"edit_module_tmp in the hparams, e.g. 'model.layers.{{}}.mlp.gate_proj' and "
            f"'model.layers.{{}}.mlp.down_proj'"
        )
    layers_path = known[2] if known and attr_module_tmp is None else None
    n = num_layers if num_layers is not None else _count_layers(model, layers_path, attr_tmp)
    for tmp, key in ((attr_tmp, "attr_module_tmp"), (edit_tmp, "edit_module_tmp")):
        try:
            model.get_submodule(tmp.format(0))
            if n > 0:
                model.get_submodule(tmp.format(n - 1))
        except AttributeError:
            raise UnknownArchitectureError(
                f"{key}={tmp!r} does not name a module of this {model_type!r} model "
                f"(tried layers 0 and {n - 1}); fix {key} in the hparams"
            ) from None
    if n == 0:
        raise UnknownArchitectureError(f"no transformer layers found in {model_type!r} model via {attr_tmp!r}")
    return ArchSpec(model_type=model_type, num_layers=n, attr_module_tmp=attr_tmp, edit_module_tmp=edit_tmp)
