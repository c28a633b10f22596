"""Per-fact neuron selection: attribute every prompt, threshold, union (MEMLA paper, arXiv 2406.11566, §3.1)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch

from ..devices import model_device
from ..prompt_format import format_prompt
from .inputs import EmptyPromptError, encode_fact
from .positions import score_each_position
from .settings import AttributionSettings


def attribute_prompt(
    model,
    tok,
    prompt: str,
    target: str,
    arch,
    steps: int = 20,
    baseline: str = "amig",
    layers: Optional[Sequence[int]] = None,
    method: str = "fast",
    batch_size: int = 64,
) -> torch.Tensor:
    """Integrated-gradients scores [num_layers, d_ff] (float32) of one prompt and target.

    ``method="fast"`` recomputes only the positions and layers a patch changes (see
    :mod:`.fast`); ``"reference"`` is the straightforward whole-sequence implementation.
    """
    settings = AttributionSettings(
        steps=steps, baseline=baseline, layers=layers, batch_size=batch_size, implementation=method
    )
    return score_prompt(model, tok, prompt, target, arch, settings)


def score_prompt(model, tok, prompt: str, target: str, arch, settings: AttributionSettings) -> torch.Tensor:
    """:func:`attribute_prompt` with the settings given as one object (the prompt put in ``settings.prompt_format``).

    ``settings.method`` picks integrated gradients (fast or reference implementation) or the
    one-pass estimate of :mod:`.onepass`; ``settings.positions == "each"`` scores every target
    token at its own position (:mod:`.positions`).
    """
    prompt = format_prompt(tok, prompt, settings.prompt_format)
    if settings.method == "atp":
        from .onepass import attribute_onepass_fact as fn
    elif settings.implementation == "fast":
        from .fast import attribute_fast_fact as fn
    else:
        from .reference import attribute_reference_fact as fn
    fact = encode_fact(tok, prompt, target, model_device(model))
    if settings.positions == "each":
        return score_each_position(fn, model, tok, fact, arch, settings)
    return fn(model, tok, fact, arch, settings)


def select_neurons(scores: torch.Tensor, threshold: float) -> set[tuple[int, int]]:
    """Neurons with ``score > threshold * max score`` (max over all layers and neurons).

    When no score is positive the rule selects nothing: a prompt whose every neuron lowers
    the target's probability carries no evidence of where the fact lives.
    """
    top = float(scores.max())
    if not top > 0.0:
        return set()
    idx = (scores > threshold * top).nonzero(as_tuple=False).tolist()
    return {(int(l), int(i)) for l, i in idx}


def find_neurons(
    model,
    tok,
    prompts: Iterable[str],
    target: str,
    arch,
    hparams,
    method: str = "fast",
) -> set[tuple[int, int]]:
    """Union over ``prompts`` of the neurons selected for ``target`` (set of (layer, index)).

    ``hparams`` is MEMLA's hyperparameters or an :class:`AttributionSettings` built from them;
    runs on the model's own device and dtype.
    """
    prompts = list(prompts)
    if not prompts:
        raise EmptyPromptError(f"no prompts given to attribute target {target!r}")
    settings = AttributionSettings.from_hparams(hparams, implementation=method)
    found: set[tuple[int, int]] = set()
    for prompt in prompts:
        scores = score_prompt(model, tok, prompt, target, arch, settings)
        found |= select_neurons(scores, settings.threshold)
    return found
