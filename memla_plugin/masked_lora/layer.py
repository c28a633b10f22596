"""The update of one down-projection: Delta = (B_s A_s) * M_s + (B_i A_i) * M_i (MEMLA paper §3.3).

Row-vector notation: the down-projection computes ``h = u W`` with ``u`` of size d_ff and
``W`` of shape (d_ff, d). Each sub-editor has ``B`` (d_ff, R) initialised to zeros and ``A``
(R, d) drawn from N(0, 1), R = rank_per_neuron x (number of that set's neurons in the
layer), and no alpha/r scaling. ``M`` is a 0/1 matrix whose row j is all ones iff neuron j
belongs to the set, so the update can only change those rows of ``W``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

SUBEDITORS = ("specific", "independent")


class MaskedDualLoRA(nn.Module):
    """Up to two masked low-rank updates of one (d_ff, d) down-projection weight.

    Parameters are kept in float32 whatever the model's dtype, so that training in a
    half-precision model still accumulates small Adam steps.
    """

    def __init__(
        self,
        d_ff: int,
        d: int,
        specific: Sequence[int] = (),
        independent: Sequence[int] = (),
        rank_per_neuron: int = 4,
        use_masks: bool = True,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        self.d_ff, self.d = int(d_ff), int(d)
        self.use_masks = bool(use_masks)
        self.neurons: dict[str, list[int]] = {}
        for name, idx in zip(SUBEDITORS, (specific, independent)):
            idx = sorted({int(i) for i in idx})
            if not idx:
                continue  # a sub-editor exists only for a set present in this layer
            if idx[-1] >= self.d_ff:
                raise IndexError(f"neuron index {idx[-1]} out of range for d_ff={self.d_ff}")
            rank = rank_per_neuron * len(idx)
            self.neurons[name] = idx
            self.register_parameter(f"B_{name}", nn.Parameter(torch.zeros(self.d_ff, rank, device=device)))
            self.register_parameter(f"A_{name}", nn.Parameter(torch.randn(rank, self.d, device=device)))
            rows = torch.zeros(self.d_ff, 1, device=device)
            rows[idx] = 1.0
            # stored as a column and broadcast: identical to the full 0/1 matrix M, d times smaller
            self.register_buffer(f"rows_{name}", rows, persistent=False)

    @property
    def subeditors(self) -> list[str]:
        return list(self.neurons)

    def rows(self, name: str) -> Optional[torch.Tensor]:
        """Column (d_ff, 1) of the mask of sub-editor ``name``; None when masks are off."""
        return getattr(self, f"rows_{name}") if self.use_masks else None

    def mask(self, name: str) -> torch.Tensor:
        """The full 0/1 mask M (d_ff, d) of sub-editor ``name`` (all ones without masks)."""
        rows = getattr(self, f"rows_{name}")
        if not self.use_masks:
            rows = torch.ones_like(rows)
        return rows.expand(self.d_ff, self.d).clone()

    def touched_rows(self) -> torch.Tensor:
        """Boolean (d_ff,) of the rows the update may change."""
        if not self.use_masks:
            return torch.ones(self.d_ff, dtype=torch.bool, device=self._any_param().device)
        touched = torch.zeros(self.d_ff, dtype=torch.bool, device=self._any_param().device)
        for name in self.neurons:
            touched |= getattr(self, f"rows_{name}")[:, 0].bool()
        return touched

    def _any_param(self) -> torch.Tensor:
        return next(self.parameters())

    def delta(self) -> torch.Tensor:
        """Delta (d_ff, d) in row-vector layout, float32."""
        out = None
        for name in self.neurons:
            part = getattr(self, f"B_{name}") @ getattr(self, f"A_{name}")
            rows = self.rows(name)
            if rows is not None:
                part = part * rows
            out = part if out is None else out + part
        if out is None:
            return torch.zeros(self.d_ff, self.d)
        return out

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u @ Delta`` for activations ``u`` (..., d_ff), without forming Delta.

        (B A) * M with a row mask equals diag(m) B A, so u (B A * M) = ((u * m) B) A.
        """
        x = u.float()
        out = None
        for name in self.neurons:
            rows = self.rows(name)
            xin = x * rows[:, 0] if rows is not None else x
            part = (xin @ getattr(self, f"B_{name}")) @ getattr(self, f"A_{name}")
            out = part if out is None else out + part
        if out is None:
            return x.new_zeros(*x.shape[:-1], self.d)
        return out
