"""Attributing a multi-token target token by token, each at its own position (not in the paper).

The authors' attribution patches the FFN activation at the last prompt position only and scores
the whole target through it, so for "Mos|cow" the neurons follow what makes the model start
the word. Here target token i is attributed as a fact of its own: the prompt followed by target
tokens 0..i-1, patched at its last position and scored on token i alone; the per-token scores are
averaged (the knowledge-neuron code of Dai et al. 2022 does the same for multi-token answers).
The AMIG baseline of each such fact replaces each of its input tokens by EOS in turn, the target
prefix included. A one-token target gives exactly the last-position scores.
"""
from __future__ import annotations

from typing import Callable

import torch

from .inputs import FactTokens

#: ``fn(model, tok, fact, arch, settings) -> scores [num_layers, d_ff]``
FactScorer = Callable[..., torch.Tensor]


def split_by_position(fact: FactTokens) -> list[FactTokens]:
    """One single-token fact per target token: (prompt + target[:i], target[i])."""
    out = []
    for i in range(fact.n_target):
        prefix = fact.target_ids[:i].unsqueeze(0)
        out.append(FactTokens(torch.cat([fact.prompt_ids, prefix], dim=1), fact.target_ids[i : i + 1]))
    return out


def score_each_position(fn: FactScorer, model, tok, fact: FactTokens, arch, settings) -> torch.Tensor:
    """Mean over target tokens of ``fn``'s scores of each single-token fact of :func:`split_by_position`."""
    parts = split_by_position(fact)
    total = fn(model, tok, parts[0], arch, settings)
    for part in parts[1:]:
        total = total + fn(model, tok, part, arch, settings)
    return total / len(parts)
