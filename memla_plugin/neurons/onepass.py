"""One-pass attribution patching: a first-order estimate of what patching each neuron does.

Integrated gradients (:mod:`.fast`) evaluates m gradients per layer along the path from the
baseline a' to the clean activation a. Attribution patching (Nanda 2023; Kramár et al. 2024,
"AtP*") linearises instead: the effect of moving neuron i of layer l from a'_i to a_i is
estimated by ``d log P(y | x) / d a_i * (a_i - a'_i)``, the gradient taken once at the clean
input. One forward and one backward of the teacher-forced sequence give that gradient for
every attributed layer at once, so the cost no longer grows with m or with the number of layers.

The baseline is MEMLA's own (AMIG or zero), computed by the fast path's packed prelude where
the model's decoder stack allows it and by the reference's per-token forwards otherwise.
The objective is the target's log-probability (summed over its teacher-forced tokens): the
usual attribution-patching metric. For a single-token target it differs from the probability
IG uses only by a factor per prompt, which the relative threshold ignores.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import torch

from ..devices import model_device
from .inputs import FactTokens, encode_fact, eos_token_id
from .integrated import attribution_mode, check_baseline, check_layers, layer_hooks
from .settings import AttributionSettings


def _probes(model, arch, layers: Sequence[int], position: int, acts: dict,
            deltas: dict) -> contextlib.AbstractContextManager:
    """Add a zero leaf to each layer's activation at ``position``: its gradient is the activation's.

    The sum keeps every later layer depending on the earlier layers' activations, so each
    gradient is the full derivative of the objective, as a patch at that layer alone would see.
    """

    def probe(l, out):
        acts[l] = out[0, position].detach().clone()
        delta = torch.zeros_like(acts[l]).requires_grad_(True)
        deltas[l] = delta
        out = out.clone()
        out[:, position] = out[:, position] + delta
        return out

    return layer_hooks(model, arch, layers, probe)


def target_logprob(logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """Summed log P(target token | teacher-forced prefix) of logits [1, k, V] (float32 at least)."""
    z = logits[0].to(torch.promote_types(logits.dtype, torch.float32))
    return torch.log_softmax(z, dim=-1).gather(-1, target_ids.view(-1, 1)).sum()


def clean_gradients(model, arch, fact: FactTokens, layers: Sequence[int]) -> tuple[dict, dict]:
    """(activation, d log P(target) / d activation) per layer at the last prompt position, one pass."""
    acts: dict[int, torch.Tensor] = {}
    deltas: dict[int, torch.Tensor] = {}
    P, k = fact.last, fact.n_target
    with _probes(model, arch, layers, P, acts, deltas):
        logits = model(input_ids=fact.teacher_forced()).logits[:, P : P + k]
    objective = target_logprob(logits, fact.target_ids)
    grads = torch.autograd.grad(objective, [deltas[l] for l in layers])
    return acts, dict(zip(layers, grads))


def baseline_activations(model, tok, arch, fact: FactTokens, layers: Sequence[int], settings: AttributionSettings) -> dict:
    """Baseline activation per layer (missing layers: zero), with the fast path's prelude when it applies."""
    baseline = check_baseline(settings.baseline)
    if baseline == "zero":
        return {}
    eos: Optional[int] = eos_token_id(tok, model)
    stack = None
    if settings.implementation == "fast":
        from .stack import resolve_stack

        stack = resolve_stack(model, arch)
    limit = stack.max_positions() if stack is not None else None
    if stack is not None and (limit is None or fact.prompt_len + fact.n_target - 1 <= limit):
        from .fast import prelude

        return prelude(model, stack, arch, fact, layers, eos)[1]
    from .reference import reference_baseline

    return reference_baseline(model, arch, fact, layers, baseline, eos)


def attribute_onepass(model, tok, prompt: str, target: str, arch, settings: AttributionSettings) -> torch.Tensor:
    """Scores [num_layers, d_ff] (float32): ``grad log P(target) at a  *  (a - a')`` per neuron."""
    return attribute_onepass_fact(model, tok, encode_fact(tok, prompt, target, model_device(model)), arch, settings)


def attribute_onepass_fact(model, tok, fact: FactTokens, arch, settings: AttributionSettings) -> torch.Tensor:
    """:func:`attribute_onepass` of an already tokenised fact."""
    layers = check_layers(settings.layers, arch.num_layers)
    device = fact.prompt_ids.device
    with attribution_mode(model):
        with torch.no_grad():
            base = baseline_activations(model, tok, arch, fact, layers, settings)
        acts, grads = clean_gradients(model, arch, fact, layers)
    d_ff = acts[layers[0]].shape[-1]
    scores = torch.zeros(arch.num_layers, d_ff, dtype=torch.float32, device=device)
    for l in layers:
        a = acts[l].float()
        b = base[l].float() if l in base else torch.zeros_like(a)
        scores[l] = grads[l].float() * (a - b)
    return scores
