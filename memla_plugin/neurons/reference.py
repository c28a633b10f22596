"""The straightforward integrated-gradients attribution (MEMLA paper §3.1), kept as the reference.

For every layer and every batch of path points this runs the whole teacher-forced sequence
(prompt + all target tokens) through the whole model, forward and backward, with the layer's
FFN pre-activation at the last prompt position replaced by the path point. It is slow
(m (T+k) L layer-positions per layer) but has no moving parts; :mod:`.fast` must agree with it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..devices import model_device
from .inputs import FactTokens, amig_inputs, encode_fact, eos_token_id
from .integrated import (
    attribution_mode,
    capture_at,
    check_baseline,
    check_layers,
    finish_scores,
    patch_rows,
    path_points,
    step_batches,
    target_probability,
)
from .settings import AttributionSettings


def reference_baseline(model, arch, fact, layers: Sequence[int], baseline: str, eos: Optional[int]) -> dict:
    """Baseline activation per layer: zeros, or the AMIG mean over one forward per replaced token."""
    if baseline == "zero":
        return {}
    rows = amig_inputs(fact, eos)
    acc: dict[int, torch.Tensor] = {}
    for j in range(rows.shape[0]):
        got: dict[int, torch.Tensor] = {}
        with torch.no_grad(), capture_at(model, arch, layers, fact.last, got):
            model(input_ids=rows[j : j + 1])
        for l in layers:
            acc[l] = acc.get(l, 0) + got[l][0].float()
    return {l: (v / rows.shape[0]) for l, v in acc.items()}


def attribute_reference(model, tok, prompt: str, target: str, arch, settings: AttributionSettings) -> torch.Tensor:
    """Attribution scores [num_layers, d_ff] (float32; zero rows for layers not attributed)."""
    return attribute_reference_fact(model, tok, encode_fact(tok, prompt, target, model_device(model)), arch, settings)


def attribute_reference_fact(model, tok, fact: FactTokens, arch, settings: AttributionSettings) -> torch.Tensor:
    """:func:`attribute_reference` of an already tokenised fact."""
    baseline = check_baseline(settings.baseline)
    steps, batch_size = settings.steps, settings.batch_size
    layers = check_layers(settings.layers, arch.num_layers)
    device = fact.prompt_ids.device
    eos = eos_token_id(tok, model) if baseline == "amig" else None
    seq = fact.teacher_forced(full=True)
    last, k = fact.last, fact.n_target
    with attribution_mode(model):
        acts: dict[int, torch.Tensor] = {}
        with torch.no_grad(), capture_at(model, arch, layers, last, acts):
            model(input_ids=seq)
        base = reference_baseline(model, arch, fact, layers, baseline, eos)
        d_ff = acts[layers[0]].shape[-1]
        scores = torch.zeros(arch.num_layers, d_ff, dtype=torch.float32, device=device)
        for l in layers:
            a = acts[l][0]
            b = base.get(l, torch.zeros_like(a, dtype=torch.float32)).to(a.dtype)
            pts = path_points(a, b, steps)
            grad_sum = torch.zeros(d_ff, dtype=torch.float32, device=device)
            module = model.get_submodule(arch.attr_module(l))
            for s0, s1 in step_batches(steps, batch_size):
                x = pts[s0:s1].clone().requires_grad_(True)
                with patch_rows(module, x, last):
                    logits = model(input_ids=seq.expand(s1 - s0, -1)).logits
                prob = target_probability(logits[:, last : last + k], fact.target_ids)
                (g,) = torch.autograd.grad(prob.sum(), x)
                grad_sum += g.float().sum(0)
            scores[l] = finish_scores(a, grad_sum, steps)
    return scores
