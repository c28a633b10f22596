"""The attribution settings, read once from the hyperparameters and passed around as one object.

Every setting here changes which neurons are selected, so the same object also names the
neuron-cache entry (:meth:`AttributionSettings.cache_key`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..errors import HParamsError

#: attribution methods: "ig", integrated gradients with ``steps`` path points as in the MEMLA paper
#: (arXiv 2406.11566, §3.1; any m >= 1); "atp", a one-pass attribution-patching estimate against the
#: same baseline, gradient of the target log-probability at the clean activation times (a - a')
#: (:mod:`.onepass`), where ``steps`` plays no part
METHODS = ("ig", "atp")
#: where a multi-token target is attributed: "last" prompt position for every target token (the
#: authors' code) or "each" target token at its own position (:mod:`.positions`)
POSITIONS = ("last", "each")
#: implementations of integrated gradients that give the same scores (see .fast and .reference)
IMPLEMENTATIONS = ("fast", "reference")


@dataclass(frozen=True)
class AttributionSettings:
    """How to score neurons for one fact and which to keep."""

    steps: int = 20
    baseline: str = "amig"
    threshold: float = 0.3
    layers: Optional[tuple[int, ...]] = None
    batch_size: int = 64
    method: str = "ig"
    implementation: str = "fast"
    #: "unspaced" (target as given, the authors' code) or "scored" (the training/scoring form)
    target_form: str = "unspaced"
    #: how each prompt is put to the model (memla_plugin.prompt_format)
    prompt_format: str = "bare"
    #: "last" or "each" (:data:`POSITIONS`)
    positions: str = "last"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HParamsError(f"attr_method={self.method!r}; choose one of {', '.join(METHODS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise HParamsError(f"attr_steps must be a positive integer (integrated-gradient steps), got {self.steps!r}")
        if self.implementation not in IMPLEMENTATIONS:
            raise HParamsError(
                f"attribution method {self.implementation!r} is not one of {', '.join(IMPLEMENTATIONS)}"
            )
        if self.positions not in POSITIONS:
            raise HParamsError(f"attr_positions={self.positions!r}; choose one of {', '.join(POSITIONS)}")
        if self.layers is not None and not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))

    @classmethod
    def from_hparams(cls, hparams: Any, implementation: str = "fast") -> "AttributionSettings":
        """Read ``attr_method``, ``attr_steps``, ``attr_baseline``, ``attr_threshold``, ``layers``, ``attr_batch_size``,
        ``attr_target_form``, ``attr_positions`` and ``prompt_format``."""
        if isinstance(hparams, cls):
            return hparams
        layers: Optional[Sequence[int]] = getattr(hparams, "layers", None)
        return cls(
            steps=int(hparams.attr_steps),
            baseline=hparams.attr_baseline,
            threshold=float(hparams.attr_threshold),
            layers=tuple(layers) if layers is not None else None,
            batch_size=int(getattr(hparams, "attr_batch_size", 64)),
            method=getattr(hparams, "attr_method", "ig"),
            implementation=implementation,
            target_form=getattr(hparams, "attr_target_form", "unspaced"),
            prompt_format=getattr(hparams, "prompt_format", "bare"),
            positions=getattr(hparams, "attr_positions", "last"),
        )

    def cache_key(self, model_name: str) -> str:
        """The neuron-cache model key: the model plus every setting that changes the selection."""
        from .cache import cache_key

        key = cache_key(model_name, self.steps, self.baseline, self.threshold, self.layers, method=self.method)
        # the paper's form keeps the key it always had, so existing caches stay valid
        key = key if self.target_form == "unspaced" else f"{key}-{self.target_form}"
        key = key if self.prompt_format == "bare" else f"{key}-{self.prompt_format}"
        return key if self.positions == "last" else f"{key}-pos{self.positions}"

    def attribution_target(self, target: str, lang: str, tok: Any) -> str:
        """The text whose tokens attribution scores: as given, or in the form training and scoring use."""
        if self.target_form == "unspaced":
            return target
        from ..tokenisation import target_with_space

        return target_with_space(target, lang, tok)
