"""Per-fact neuron selection: attribute every prompt, threshold, union (DESIGN §3.1)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch

from ..errors import HParamsError
from .inputs import EmptyPromptError

METHODS = ("fast", "reference")


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

    ``method="fast"`` recomputes only the positions and layers a patch changes (issue 9);
    ``"reference"`` is the straightforward whole-sequence implementation.
    """
    if method == "fast":
        from .fast import attribute_fast as fn
    elif method == "reference":
        from .reference import attribute_reference as fn
    else:
        raise HParamsError(f"attribution method {method!r} is not one of {', '.join(METHODS)}")
    return fn(model, tok, prompt, target, arch, steps, baseline, layers, batch_size)


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

    Reads ``attr_steps``, ``attr_baseline``, ``attr_threshold``, ``attr_batch_size`` and
    ``layers`` from ``hparams``; runs on the model's own device and dtype.
    """
    prompts = list(prompts)
    if not prompts:
        raise EmptyPromptError(f"no prompts given to attribute target {target!r}")
    found: set[tuple[int, int]] = set()
    for prompt in prompts:
        scores = attribute_prompt(
            model,
            tok,
            prompt,
            target,
            arch,
            steps=int(hparams.attr_steps),
            baseline=hparams.attr_baseline,
            layers=getattr(hparams, "layers", None),
            method=method,
            batch_size=int(getattr(hparams, "attr_batch_size", 64)),
        )
        found |= select_neurons(scores, float(hparams.attr_threshold))
    return found
