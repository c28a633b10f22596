"""The exact rewrite of a masked dual LoRA as peft LoRA factors.

Row-vector notation as in :mod:`memla_plugin.masked_lora`: a down-projection computes
``h = u W`` with ``W`` (d_ff, d), and a sub-editor contributes ``(B_s A_s) * M_s`` with
``B_s`` (d_ff, R_s), ``A_s`` (R_s, d) and a mask ``M_s`` whose rows are ones for the selected
neurons. A row mask is a diagonal on the left: ``(B A) * M = diag(m) B A``. So

    scale * Delta = sum_s (diag(m_s) B_s) (scale A_s)

and in ``nn.Linear`` layout (``weight`` = W^T, peft's update = ``lora_B @ lora_A``):

    lora_A = concat_s (diag(m_s) B_s)^T      (R, d_ff): B_s^T with unselected input columns zeroed
    lora_B = concat_s (scale A_s)^T          (d, R)

GPT-2's Conv1D stores ``W`` itself; peft handles it with ``fan_in_fan_out=True``, which
transposes ``lora_B @ lora_A`` back, so the factors are the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..masked_lora import MaskedLoRAModel, module_kind


@dataclass
class ModuleFactors:
    """peft LoRA factors of one edited module, float32 on the CPU.

    ``parts`` lists the sub-editors stacked along the rank, in order: ``(label, rank,
    neurons)`` with label e.g. ``"edit0/specific"``; it is provenance, not needed by peft.
    """

    module: str
    kind: str  # "linear" or "conv1d"
    lora_A: torch.Tensor  # (rank, d_ff)
    lora_B: torch.Tensor  # (d, rank)
    parts: list[tuple[str, int, list[int]]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return int(self.lora_A.shape[0])

    def delta_weight(self) -> torch.Tensor:
        """The update in the module's weight layout (what peft adds on merge, scaling 1)."""
        delta = self.lora_B @ self.lora_A  # (d, d_ff) = nn.Linear layout
        return delta.t().contiguous() if self.kind == "conv1d" else delta


def peft_factors(lora: MaskedLoRAModel, scale: float, label: str = "edit0") -> dict[str, ModuleFactors]:
    """The trained editors of ``lora`` as peft factors with ``scale`` folded into ``lora_B``.

    Keys are full module names (``edit_module_tmp`` filled with each layer).
    """
    out: dict[str, ModuleFactors] = {}
    with torch.no_grad():
        for layer in lora.layers:
            editor = lora.editors[str(layer)]
            module = lora.targets[layer]
            a_parts, b_parts, parts = [], [], []
            for name in editor.subeditors:
                B = getattr(editor, f"B_{name}").detach().float().cpu()
                A = getattr(editor, f"A_{name}").detach().float().cpu()
                rows = editor.rows(name)
                if rows is not None:
                    B = B * rows.detach().float().cpu()  # zero the rows of unselected neurons
                a_parts.append(B.t())
                b_parts.append(A.t() * float(scale))
                parts.append((f"{label}/{name}", int(A.shape[0]), list(editor.neurons[name])))
            name = lora.edit_module_tmp.format(layer)
            out[name] = ModuleFactors(
                module=name,
                kind=module_kind(module),
                lora_A=torch.cat(a_parts, dim=0).contiguous(),
                lora_B=torch.cat(b_parts, dim=1).contiguous(),
                parts=parts,
            )
    return out


def concat_factors(edits: Sequence[dict[str, ModuleFactors]]) -> dict[str, ModuleFactors]:
    """Several edits' factors as one adapter whose update is their sum (ranks concatenated).

    ``lora_B @ lora_A`` of a rank concatenation is the sum of the parts' products, so the
    result reproduces edits merged one after the other (up to float rounding).
    """
    merged: dict[str, ModuleFactors] = {}
    for factors in edits:
        for name, f in factors.items():
            if name not in merged:
                merged[name] = ModuleFactors(name, f.kind, f.lora_A.clone(), f.lora_B.clone(), list(f.parts))
                continue
            m = merged[name]
            m.lora_A = torch.cat([m.lora_A, f.lora_A], dim=0)
            m.lora_B = torch.cat([m.lora_B, f.lora_B], dim=1)
            m.parts.extend(f.parts)
    return dict(sorted(merged.items(), key=lambda kv: _layer_sort_key(kv[0])))


def _layer_sort_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in name.split("."))
