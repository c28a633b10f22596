"""Fast integrated-gradients attribution: recompute only what a patch changes.

Patching layer l's FFN pre-activation at the last prompt position (index T-1) cannot change
anything at earlier positions, nor anything below layer l. So:

1. one ordinary forward of prompt + target[:-1] records, per attributed layer, the residual
   stream and FFN input at T-1, the layer's output at the k-1 positions after T-1, the
   keys/values of positions 0..T-2 of every layer, and the clean activation ``a`` at T-1;
2. for the AMIG baseline, the T token-replaced prompts go through the model in one batch
   that yields every layer's baseline activation at once (no LM head);
3. path points are evaluated on the k positions only, from layer l upward, attending over the
   cached prefix. At layer l itself only the FFN of position T-1 is recomputed: attention
   there, and every later position, still see unpatched inputs. Several layers share one
   batch as a "staircase": the batch starts at the lowest layer of the chunk and each
   further layer's path points join it at their own layer, so every row is computed exactly
   from its patch layer up, with one backward per chunk; the LM head runs in row blocks of
   bounded size so large chunks do not hold [rows, vocab] logits.

Per layer that is m·k positions through L-l layers instead of m·(T+k) positions through all
L layers. Models whose decoder stack :mod:`.stack` cannot drive fall back to the reference.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..devices import model_device
from .inputs import FactTokens, encode_fact, eos_token_id
from .integrated import (
    attribution_mode,
    check_baseline,
    check_layers,
    finish_scores,
    path_points,
    target_probability,
)
from .settings import AttributionSettings
from .stack import DecoderStack, PrefixKV, resolve_stack

log = logging.getLogger(__name__)
_WARNED: set = set()


@dataclass
class CleanRun:
    """What the ordinary forward leaves behind for the path points (per attributed layer)."""

    mid: dict[int, torch.Tensor]  # [1, d]: residual stream after attention at T-1 (FFN skip input)
    ffn_in: dict[int, torch.Tensor]  # [1, d]: the FFN's (normed) input at T-1
    out_after: dict[int, torch.Tensor]  # [1, k-1, d]: layer output at T.. (unchanged by a patch at T-1)
    kv: PrefixKV  # keys/values of positions 0..T-2, every layer
    acts: dict[int, torch.Tensor]  # [d_ff]: activation at T-1


@dataclass
class Piece:
    """Path points [start, stop) of one layer, evaluated as rows of a staircase batch."""

    layer: int
    start: int
    stop: int


class _Stop(Exception):
    """Raised by a hook to end a forward once the embeddings are known."""


def _base_model(model):
    base = getattr(model, "base_model", None)
    return base if base is not None and base is not model else model


def _first_arg(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def layer0_input(model, stack: DecoderStack, ids: torch.Tensor) -> torch.Tensor:
    """What the model feeds its first decoder layer for ``ids`` [B, S] at positions 0..S-1.

    Runs the model's own embedding code (token and learned position embeddings, any
    scaling) and stops before the first layer, so no family-specific embedding logic is needed.
    """
    got = {}

    def pre(_m, args, kwargs):
        got["h"] = _first_arg(args, kwargs).detach()
        raise _Stop

    handle = stack.layers[0].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            _base_model(model)(input_ids=ids, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["h"]


class RecordKV:
    """Cache stand-in for the packed pass: passes keys/values through, keeps the prompt prefix's."""

    def __init__(self, keep: int):
        self.keep = keep
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        self.keys[layer_idx] = key_states[:, :, : self.keep]
        self.values[layer_idx] = value_states[:, :, : self.keep]
        return key_states, value_states


#: most AMIG tokens packed into one prelude pass (a pass's mask is N x N); longer prompts take several
PACK_TOKENS = 1024


def packed_layout(fact: FactTokens, eos: Optional[int], rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and row ids of a packed prelude sequence.

    Row -1 is the clean teacher-forced sequence (prompt + target[:-1]). Row j (AMIG) is the
    prompt with token j replaced by EOS, but only from position j on: its earlier positions
    equal the clean row's, so it attends to those instead of recomputing them (T(T+1)/2
    AMIG tokens in all instead of T^2).
    """
    S, T = fact.prompt_len + fact.n_target - 1, fact.prompt_len
    dev = fact.prompt_ids.device
    pos, row = [torch.arange(S, device=dev)], [torch.full((S,), -1, device=dev)]
    if eos is not None:
        for j in rows:
            pos.append(torch.arange(j, T, device=dev))
            row.append(torch.full((T - j,), j, device=dev))
    return torch.cat(pos), torch.cat(row)


def amig_groups(T: int, budget: Optional[int] = None) -> list[list[int]]:
    """AMIG rows 0..T-1 split so that each prelude pass packs at most ``budget`` of their tokens."""
    budget = PACK_TOKENS if budget is None else budget
    groups, cur, size = [], [], 0
    for j in range(T):
        if cur and size + (T - j) > budget:
            groups.append(cur)
            cur, size = [], 0
        cur.append(j)
        size += T - j
    return groups + [cur]


def packed_mask(pos: torch.Tensor, row: torch.Tensor, dtype) -> torch.Tensor:
    """Additive mask [1, 1, N, N] of the packed sequence (see :func:`packed_layout`)."""
    q_pos, k_pos = pos[:, None], pos[None, :]
    q_row, k_row = row[:, None], row[None, :]
    clean_key = k_row == -1
    sees_clean = clean_key & torch.where(q_row == -1, k_pos <= q_pos, k_pos < q_row)
    sees_own = (k_row == q_row) & (q_row >= 0) & (k_pos <= q_pos)
    mask = torch.zeros(pos.shape[0], pos.shape[0], dtype=dtype, device=pos.device)
    mask.masked_fill_(~(sees_clean | sees_own), torch.finfo(dtype).min)
    return mask[None, None]


def prelude(model, stack: DecoderStack, arch, fact: FactTokens, layers: Sequence[int], eos: Optional[int]):
    """No-grad pass(es) over the clean run with the AMIG rows packed in -> (CleanRun, baseline per layer).

    Replaces an ordinary forward of the clean sequence plus a batched forward of the T
    token-replaced prompts; every layer's baseline activation comes out of the same pass.
    Prompts with more than ~45 tokens split the AMIG rows over several passes.
    """
    P, S, T = fact.last, fact.prompt_len + fact.n_target - 1, fact.prompt_len
    clean_in = layer0_input(model, stack, fact.teacher_forced())[0]  # [S, d]
    eos_in = None
    if eos is not None:
        eos_ids = torch.full((1, T), eos, dtype=torch.long, device=clean_in.device)
        eos_in = layer0_input(model, stack, eos_ids)[0]  # [T, d]: EOS at every prompt position
    top = max(layers)
    want = set(layers)
    mid, ffn_in, out_after, acts = {}, {}, {}, {}
    base_sum: dict[int, torch.Tensor] = {}
    kv = RecordKV(P)
    for n_pass, rows in enumerate(amig_groups(T) if eos is not None else [[]]):
        first = n_pass == 0
        pos, row = packed_layout(fact, eos, rows)
        h = clean_in[pos].clone()  # AMIG rows' prompt tokens: same inputs as the clean row's
        if eos is not None:
            starts = (row >= 0) & (pos == row)
            h[starts] = eos_in[pos[starts]]
        h = h.unsqueeze(0)
        mask = packed_mask(pos, row, h.dtype)
        rope = stack.rope(h, pos.unsqueeze(0))
        amig_last = ((row >= 0) & (pos == P)).nonzero().squeeze(1)

        def grab(store, l):
            def pre(_m, args, kwargs):
                store[l] = _first_arg(args, kwargs)[:, P].detach()

            return pre

        def grab_act(l):
            def post(_m, _args, out):
                if first:
                    acts[l] = out[0, P].detach()
                if amig_last.numel():
                    base_sum[l] = base_sum.get(l, 0) + out[0, amig_last].float().sum(0)

            return post

        handles = []
        try:
            for l in layers:
                handles.append(model.get_submodule(arch.attr_module(l)).register_forward_hook(grab_act(l)))
                if first:
                    handles.append(stack.ffn_norm(l).register_forward_pre_hook(grab(mid, l), with_kwargs=True))
                    ffn = model.get_submodule(stack.ffn_paths[l])
                    handles.append(ffn.register_forward_pre_hook(grab(ffn_in, l), with_kwargs=True))
            with torch.no_grad():
                for j in range(stack.num_layers if first else top + 1):
                    h = stack.run_layer(j, h, kv if first else None, mask, rope)
                    if first and j in want:
                        out_after[j] = h[:, P + 1 : S]
                    if first and j == top and h.shape[1] > S:  # AMIG rows are done; keep the clean row
                        h, mask = h[:, :S], mask[..., :S, :S]
                        rope = stack.rope(h, pos[:S].unsqueeze(0))
        finally:
            for handle in handles:
                handle.remove()
    base = {l: v / T for l, v in base_sum.items()}
    return CleanRun(mid, ffn_in, out_after, PrefixKV(kv.keys, kv.values), acts), base


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
    entered earlier; one backward serves the whole chunk (the LM head runs in row blocks).
    """
    P, k = fact.last, fact.n_target
    xs = [points[p.layer][p.start : p.stop].clone().requires_grad_(True) for p in pieces]
    some = clean.mid[pieces[0].layer]
    mask = stack.causal_mask(P, k, some.dtype, some.device)
    rope = stack.rope(some, torch.arange(P, P + k, device=some.device).unsqueeze(0))
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
    final = stack.norm(h)
    return list(torch.autograd.grad(final, xs, grad_outputs=head_gradient(stack, final, fact)))


#: LM-head rows (batch rows x target tokens) per matmul: large enough for efficient GEMMs,
#: small enough that the [rows, vocab] logits stay around 150 MB in float32 for a 150k vocabulary
HEAD_ROWS = 256


def head_gradient(stack: DecoderStack, hidden: torch.Tensor, fact: FactTokens) -> torch.Tensor:
    """d(sum of target probabilities)/d(final hidden states), the LM head run in row blocks.

    Each block's logits are created, differentiated and freed before the next, so the
    staircase batch can be large without holding [batch, k, vocab] logits for its backward.
    """
    hidden = hidden.detach()
    grad = torch.empty_like(hidden)
    rows = max(1, HEAD_ROWS // fact.n_target)
    for r0 in range(0, hidden.shape[0], rows):
        block = hidden[r0 : r0 + rows].requires_grad_(True)
        prob = target_probability(stack.lm_head(block), fact.target_ids)
        (grad[r0 : r0 + rows],) = torch.autograd.grad(prob.sum(), block)
    return grad


def attribute_fast(model, tok, prompt: str, target: str, arch, settings: AttributionSettings) -> torch.Tensor:
    """Attribution scores [num_layers, d_ff] equal (within float tolerance) to the reference's."""
    return attribute_fast_fact(model, tok, encode_fact(tok, prompt, target, model_device(model)), arch, settings)


def attribute_fast_fact(model, tok, fact: FactTokens, arch, settings: AttributionSettings) -> torch.Tensor:
    """:func:`attribute_fast` of an already tokenised fact."""
    baseline = check_baseline(settings.baseline)
    steps = settings.steps
    layers = check_layers(settings.layers, arch.num_layers)
    stack = resolve_stack(model, arch)
    device = fact.prompt_ids.device
    seq_len = fact.prompt_len + fact.n_target - 1
    limit = stack.max_positions() if stack is not None else None
    if stack is None or (limit is not None and seq_len > limit):
        why = "unsupported decoder stack" if stack is None else f"sequence longer than sliding window {limit}"
        if (arch.model_type, why) not in _WARNED:
            _WARNED.add((arch.model_type, why))
            log.warning("fast attribution unavailable for %r (%s); using the reference", arch.model_type, why)
        from .reference import attribute_reference_fact

        return attribute_reference_fact(model, tok, fact, arch, settings)
    eos = eos_token_id(tok, model) if baseline == "amig" else None
    with attribution_mode(model):
        clean, base = prelude(model, stack, arch, fact, layers, eos)
        points = {}
        for l in layers:
            a = clean.acts[l]
            b = base.get(l, torch.zeros_like(a, dtype=torch.float32)).to(a.dtype)
            points[l] = path_points(a, b, steps)
        d_ff = clean.acts[layers[0]].shape[-1]
        grad_sum = {l: torch.zeros(d_ff, dtype=torch.float32, device=device) for l in layers}
        for pieces in plan_chunks(layers, steps, settings.batch_size):
            grads = run_staircase(model, stack, arch, clean, fact, pieces, points)
            for p, g in zip(pieces, grads):
                grad_sum[p.layer] += g.float().sum(0)
        scores = torch.zeros(arch.num_layers, d_ff, dtype=torch.float32, device=device)
        for l in layers:
            scores[l] = finish_scores(clean.acts[l], grad_sum[l], steps)
    return scores
