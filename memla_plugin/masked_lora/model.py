"""Wiring masked dual LoRA editors into a model and merging them into its weights.

Training never touches the model's weights: a forward hook on each edited
down-projection adds ``u @ Delta`` to its output. Merging writes ``W += gamma * Delta``
into the weight in the module's own layout: ``nn.Linear`` stores W transposed (d, d_ff),
transformers' GPT-2 ``Conv1D`` stores W as is (d_ff, d).
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import nn

from ..errors import UnknownArchitectureError
from .config import MaskedLoRAConfig
from .layer import MaskedDualLoRA


def module_kind(module: nn.Module) -> str:
    """"linear" for nn.Linear-like modules, "conv1d" for GPT-2's Conv1D (weight = W)."""
    if isinstance(module, nn.Linear):
        return "linear"
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight"):
        return "conv1d"
    raise UnknownArchitectureError(
        f"cannot edit a down-projection of type {type(module).__name__}: MEMLA supports nn.Linear "
        "and transformers' Conv1D (set edit_module_tmp to the FFN output projection)"
    )


def ffn_dims(module: nn.Module) -> tuple[int, int]:
    """(d_ff, d) of a down-projection."""
    w = module.weight
    if module_kind(module) == "linear":
        return int(w.shape[1]), int(w.shape[0])
    return int(w.shape[0]), int(w.shape[1])


def to_weight_layout(module: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """A row-vector (d_ff, d) update in the layout of ``module.weight``."""
    return delta.t() if module_kind(module) == "linear" else delta


@torch.no_grad()
def merge_update(weight: torch.Tensor, update: torch.Tensor) -> None:
    """``weight += update`` touching only entries where the update is non-zero.

    Adding an exact zero is not always a bit-level no-op (-0.0 + 0.0 == +0.0), and the
    rows outside the neuron masks must stay bit-identical, so they are left alone.
    """
    if update.shape != weight.shape:
        raise ValueError(f"update of shape {tuple(update.shape)} does not fit weight {tuple(weight.shape)}")
    upd = update.to(device=weight.device)
    changed = upd != 0
    summed = (weight.float() + upd.float()).to(weight.dtype)
    weight.copy_(torch.where(changed, summed, weight))


class MaskedLoRAModel:
    """Masked dual LoRA editors on the down-projections of ``model``.

    ``seed`` (when given) is applied with ``torch.manual_seed`` right before the A
    matrices are drawn, layer by layer in ascending order, so an edit is reproducible.
    Use as a context manager or call :meth:`attach` / :meth:`detach`.
    """

    def __init__(
        self,
        model: nn.Module,
        config: MaskedLoRAConfig,
        edit_module_tmp: str,
        seed: Optional[int] = None,
    ) -> None:
        self.model = model
        self.config = config
        self.edit_module_tmp = edit_module_tmp
        self.targets: dict[int, nn.Module] = {}
        self.editors = nn.ModuleDict()
        self._handles: list = []
        if seed is not None:
            torch.manual_seed(seed)
        for layer in config.layers:
            name = edit_module_tmp.format(layer)
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise UnknownArchitectureError(
                    f"edit module {name!r} (edit_module_tmp={edit_module_tmp!r}) not found in the model"
                ) from None
            d_ff, d = ffn_dims(module)
            self.targets[layer] = module
            self.editors[str(layer)] = MaskedDualLoRA(
                d_ff,
                d,
                specific=config.specific.get(layer, ()),
                independent=config.independent.get(layer, ()),
                rank_per_neuron=config.rank_per_neuron,
                use_masks=config.use_masks,
                device=module.weight.device,
            )

    # ---------------------------------------------------------------- hooks
    def attach(self) -> "MaskedLoRAModel":
        if self._handles:
            return self
        for layer, module in self.targets.items():
            self._handles.append(module.register_forward_hook(self._make_hook(self.editors[str(layer)])))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @staticmethod
    def _make_hook(editor: MaskedDualLoRA):
        def hook(module, args, output):
            return output + editor(args[0]).to(output.dtype)

        return hook

    def __enter__(self) -> "MaskedLoRAModel":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # ---------------------------------------------------------------- parameters
    def parameters(self) -> Iterator[nn.Parameter]:
        return self.editors.parameters()

    def named_parameters(self):
        return self.editors.named_parameters()

    @property
    def layers(self) -> list[int]:
        return sorted(self.targets)

    def param_name(self, layer: int) -> str:
        return f"{self.edit_module_tmp.format(layer)}.weight"

    def deltas(self) -> dict[int, torch.Tensor]:
        """Row-vector Delta (d_ff, d) per layer, detached, float32."""
        with torch.no_grad():
            return {layer: self.editors[str(layer)].delta().detach() for layer in self.layers}

    def weight_updates(self, scale: float = 1.0) -> dict[str, torch.Tensor]:
        """``scale * Delta`` per edited parameter name, in each weight's own layout (float32)."""
        out = {}
        for layer, delta in self.deltas().items():
            module = self.targets[layer]
            out[self.param_name(layer)] = to_weight_layout(module, delta * scale).contiguous()
        return out

    def merge(self, scale: float = 1.0) -> dict[str, torch.Tensor]:
        """Detach the hooks and write ``W += scale * Delta``; returns the original weights (cloned)."""
        self.detach()
        originals = {}
        with torch.no_grad():
            for layer, delta in self.deltas().items():
                module = self.targets[layer]
                originals[self.param_name(layer)] = module.weight.detach().clone()
                merge_update(module.weight, to_weight_layout(module, delta * scale).to(module.weight.device))
        return originals
