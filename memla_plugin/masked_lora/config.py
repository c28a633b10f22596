"""Which neurons of which layers get a masked LoRA editor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import HParamsError

INITS = ("gaussian",)


def _normalise(sets: Mapping[int, "list[int] | set[int]"], what: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for layer, idx in sets.items():
        layer = int(layer)
        neurons = sorted({int(i) for i in idx})
        if any(i < 0 for i in neurons):
            raise HParamsError(f"{what}: negative neuron index in layer {layer}")
        if neurons:
            out[layer] = neurons
    return dict(sorted(out.items()))


@dataclass
class MaskedLoRAConfig:
    """Per-layer neuron lists of the two editors.

    ``specific`` holds the language-specific neurons (LSKN) and ``independent`` the
    language-independent ones (LIKN), each ``{layer: [neuron index, ...]}``. A layer gets a
    sub-editor for a set only when that set has neurons there. ``rank_per_neuron`` times the
    number of a set's neurons in a layer is that sub-editor's rank. ``use_masks=False``
    (ablation) lets the update touch every row of the down-projection.
    """

    specific: dict[int, list[int]] = field(default_factory=dict)
    independent: dict[int, list[int]] = field(default_factory=dict)
    rank_per_neuron: int = 4
    use_masks: bool = True
    init: str = "gaussian"

    def __post_init__(self) -> None:
        self.specific = _normalise(self.specific, "specific neurons")
        self.independent = _normalise(self.independent, "independent neurons")
        if self.rank_per_neuron < 1:
            raise HParamsError(f"rank_per_neuron must be >= 1, got {self.rank_per_neuron}")
        if self.init not in INITS:
            raise HParamsError(f"init={self.init!r}; choose one of {', '.join(INITS)}")

    @property
    def layers(self) -> list[int]:
        """Layers holding at least one editor, ascending."""
        return sorted(set(self.specific) | set(self.independent))

    @property
    def n_specific(self) -> int:
        return sum(len(v) for v in self.specific.values())

    @property
    def n_independent(self) -> int:
        return sum(len(v) for v in self.independent.values())

    def is_empty(self) -> bool:
        return not self.layers

    @classmethod
    def from_neuron_sets(
        cls, sets, *, use_specific: bool = True, use_independent: bool = True, **kwargs
    ) -> "MaskedLoRAConfig":
        """Editors for a fact's neuron sets: LSKN feeds the specific, LIKN the independent editor.

        ``use_specific`` / ``use_independent`` switch an editor off (the paper's ablations).
        """
        return cls(
            specific=sets.lskn if use_specific else {},
            independent=sets.likn if use_independent else {},
            **kwargs,
        )
