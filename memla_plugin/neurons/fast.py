"""Fast integrated-gradients attribution (issue 9 item 1): recompute only what a patch changes.

Patching layer l's FFN pre-activation at the last prompt position (index T-1) cannot change
anything at earlier positions, nor anything below layer l. So:

1. one ordinary forward of prompt + target[:-1] records, for every layer, its input hidden
   states at positions T-1.. (k rows for k target tokens), the keys/values of positions
   0..T-2, and the clean activation ``a`` at T-1;
2. for the AMIG baseline, the T token-replaced prompts go through the model in one batch
   that yields every layer's baseline activation at once (no LM head);
3. path points are evaluated on the k positions only, from layer l upward, attending over the
   cached prefix; at layer l itself only the FFN of position T-1 is recomputed (attention
   there, and all later positions, still see unpatched inputs). Several layers share one batch as a "staircase": the batch starts at the
   lowest layer of the chunk and each further layer's path points join it at their own
   layer, so every row is computed exactly from its patch layer up, with one LM-head call
   and one backward per chunk.

Per layer that is m·k positions through L-l layers instead of m·(T+k) positions through all
L layers. Models whose decoder stack :mod:`.stack` cannot drive fall back to the reference.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .inputs import FactTokens, amig_inputs, encode_fact, eos_token_id
from .integrated import (
    attribution_mode,
    capture_at,
    check_baseline,
    check_layers,
    finish_scores,
    path_points,
    target_probability,
)
from .stack import DecoderStack, PrefixKV, cache_layer_kv, resolve_stack

log = logging.getLogger(__name__)
_WARNED: set = set()


@dataclass
class CleanRun:
    """What the ordinary forward leaves behind for the path points (per attributed layer)."""

    mid: dict[int, torch.Tensor]  # [1, d]: residual stream after attention at T-1 (FFN skip input)
    ffn_in: dict[int, torch.Tensor]  # [1, d]: the FFN's (normed) input at T-1
    out_after: dict[int, torch.Tensor]  # [1, k-1, d]: layer output at T.. (unchanged by a patch at T-1)
    kv: PrefixKV  # keys/values of positions 0..T-2, every layer from the lowest attributed one
    acts: dict[int, torch.Tensor]  # [d_ff]: activation at T-1


@dataclass
class Piece:
    """Path points [start, stop) of one layer, evaluated as rows of a staircase batch."""

    layer: int
    start: int
    stop: int


def _base_model(model):
    base = getattr(model, "base_model", None)
    return base if base is not None and base is not model else model


def clean_forward(model, stack: DecoderStack, arch, fact: FactTokens, layers: Sequence[int]) -> CleanRun:
    """One no-grad forward of prompt + target[:-1] caching what the path points reuse."""
    P = fact.last
    mid, ffn_in, out_after = {}, {}, {}

    def first_arg(args, kwargs):
        return args[0] if args else kwargs["hidden_states"]

    def grab(store, l, sl):
        def pre(_m, args, kwargs):
            store[l] = first_arg(args, kwargs)[:, sl].detach()

        return pre

    def grab_out(l):
        def post(_m, _args, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            out_after[l] = out[:, P + 1 :].detach()

        return post

    handles = []
    acts: dict[int, torch.Tensor] = {}
    try:
        for l in layers:
            handles.append(stack.ffn_norm(l).register_forward_pre_hook(grab(mid, l, P), with_kwargs=True))
            ffn = model.get_submodule(stack.ffn_paths[l])
            handles.append(ffn.register_forward_pre_hook(grab(ffn_in, l, P), with_kwargs=True))
            handles.append(stack.layers[l].register_forward_hook(grab_out(l)))
        with torch.no_grad(), capture_at(model, arch, layers, P, acts):
            out = _base_model(model)(input_ids=fact.teacher_forced(), use_cache=True)
    finally:
        for h in handles:
            h.remove()
    keys, values = {}, {}
    for j in range(min(layers), stack.num_layers):
        k, v = cache_layer_kv(out.past_key_values, j)
        keys[j], values[j] = k[:, :, :P], v[:, :, :P]
    return CleanRun(mid, ffn_in, out_after, PrefixKV(keys, values), {l: acts[l][0] for l in layers})


def patched_layer_output(model, stack: DecoderStack, arch, clean: CleanRun, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Layer ``layer``'s output [n, k, d] with its FFN pre-activation at T-1 set to each row of ``x``.

    Attention at the patched layer and every position after T-1 are unaffected by the patch,
    so only the FFN of position T-1 is recomputed; the other rows are the clean outputs.
    """
    n = x.shape[0]

    def put(_m, _inp, out):
        return x.to(out.dtype).view_as(out)

    ffn = model.get_submodule(stack.ffn_paths[layer])
    handle = model.get_submodule(arch.attr_module(layer)).register_forward_hook(put)
    try:
        row = clean.mid[layer].unsqueeze(1) + ffn(clean.ffn_in[layer].expand(n, -1).unsqueeze(1))  # [n, 1, d]
    finally:
        handle.remove()
    rest = clean.out_after[layer]
    if rest.shape[1] == 0:
        return row
    return torch.cat([row, rest.expand(n, -1, -1)], dim=1)


def amig_baseline(model, arch, fact: FactTokens, layers: Sequence[int], eos: int, batch_size: int) -> dict:
    """Mean over j of the activation at T-1 with prompt token j replaced by EOS, every layer at once."""
    rows = amig_inputs(fact, eos)
    total: dict[int, torch.Tensor] = {}
    bs = max(1, int(batch_size))
    for s in range(0, rows.shape[0], bs):
        got: dict[int, torch.Tensor] = {}
        with torch.no_grad(), capture_at(model, arch, layers, fact.last, got):
            _base_model(model)(input_ids=rows[s : s + bs], use_cache=False)
        for l in layers:
            total[l] = total.get(l, 0) + got[l].float().sum(0)
    return {l: v / rows.shape[0] for l, v in total.items()}


def plan_chunks(layers: Sequence[int], steps: int, batch_size: int) -> list[list[Piece]]:
    """Group (layer, step range) pieces into batches of at most ``batch_size`` path points."""
    cap = max(1, int(batch_size))
    chunks: list[list[Piece]] = []
    cur: list[Piece] = []
    room = cap
    for l in layers:
        s = 0
        while s < steps:
            n = min(room, steps - s)
            cur.append(Piece(l, s, s + n))
            s += n
            room -= n
            if room == 0:
                chunks.append(cur)
                cur, room = [], cap
    if cur:
        chunks.append(cur)
    return chunks


def run_staircase(
    model, stack: DecoderStack, arch, clean: CleanRun, fact: FactTokens, pieces: list[Piece], points: dict
) -> list[torch.Tensor]:
    """Gradient of the summed target probability w.r.t. each piece's path points.

    Rows of a piece enter the batch at the output of their own layer (see
    :func:`patched_layer_output`) and run through every layer above it with the rows that
    entered earlier; one LM-head call and one backward serve the whole chunk.
    """
    P, k = fact.last, fact.n_target
    xs = [points[p.layer][p.start : p.stop].clone().requires_grad_(True) for p in pieces]
    some = clean.mid[pieces[0].layer]
    mask = stack.causal_mask(P, k, some.dtype, some.device)
    rope = stack.rope(some, P, k)
    h: Optional[torch.Tensor] = None
    nxt = 0
    for j in range(pieces[0].layer, stack.num_layers):
        if h is not None:
            h = stack.run_layer(j, h, clean.kv, mask, rope)
        joining = []
        while nxt < len(pieces) and pieces[nxt].layer == j:
            joining.append(xs[nxt])
            nxt += 1
        if joining:
            new = patched_layer_output(model, stack, arch, clean, j, torch.cat(joining, dim=0))
            h = new if h is None else torch.cat([h, new], dim=0)
    prob = target_probability(stack.logits(h), fact.target_ids)
    return list(torch.autograd.grad(prob.sum(), xs))


def attribute_fast(
    model,
    tok,
    prompt: str,
    target: str,
    arch,
    steps: int = 20,
    baseline: str = "amig",
    layers: Optional[Sequence[int]] = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Attribution scores [num_layers, d_ff] equal (within float tolerance) to the reference's."""
    baseline = check_baseline(baseline)
    layers = check_layers(layers, arch.num_layers)
    stack = resolve_stack(model, arch)
    device = next(model.parameters()).device
    fact = encode_fact(tok, prompt, target, device)
    seq_len = fact.prompt_len + fact.n_target - 1
    limit = stack.max_positions() if stack is not None else None
    if stack is None or (limit is not None and seq_len > limit):
        why = "unsupported decoder stack" if stack is None else f"sequence longer than sliding window {limit}"
        if (arch.model_type, why) not in _WARNED:
            _WARNED.add((arch.model_type, why))
            log.warning("fast attribution unavailable for %r (%s); using the reference", arch.model_type, why)
        from .reference import attribute_reference

        return attribute_reference(model, tok, prompt, target, arch, steps, baseline, layers, batch_size)
    eos = eos_token_id(tok, model) if baseline == "amig" else None
    with attribution_mode(model):
        clean = clean_forward(model, stack, arch, fact, layers)
        base = amig_baseline(model, arch, fact, layers, eos, batch_size) if baseline == "amig" else {}
        points = {}
        for l in layers:
            a = clean.acts[l]
            b = base.get(l, torch.zeros_like(a, dtype=torch.float32)).to(a.dtype)
            points[l] = path_points(a, b, steps)
        d_ff = clean.acts[layers[0]].shape[-1]
        grad_sum = {l: torch.zeros(d_ff, dtype=torch.float32, device=device) for l in layers}
        for pieces in plan_chunks(layers, steps, batch_size):
            grads = run_staircase(model, stack, arch, clean, fact, pieces, points)
            for p, g in zip(pieces, grads):
                grad_sum[p.layer] += g.float().sum(0)
        scores = torch.zeros(arch.num_layers, d_ff, dtype=torch.float32, device=device)
        for l in layers:
            scores[l] = finish_scores(clean.acts[l], grad_sum[l], steps)
    return scores
