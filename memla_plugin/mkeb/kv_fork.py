"""Scoring that computes each distinct prompt once and forks its KV cache per continuation.

The edit question (with the new and the true target), the paraphrases and the
neighbourhood prompts (scored and decoded) share their prompt computation: each batch of
distinct prompts runs once, its cache is copied row by row for every target or decode that
continues it, and the continuations run together in one right-padded block.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .engine import (
    MAX_LOGIT_POSITIONS,
    DecodeStop,
    TFResult,
    accepts_kwarg,
    call_overhead,
    drop_finished_rows,
    group_by_length,
    left_pad,
    model_device,
    no_grad,
    select_cache_rows,
)

__all__ = ["common_prefix", "shared_prompt_scoring"]


def _forkable(cache: Any) -> bool:
    """A transformers Cache whose layers can be row-selected into an independent copy."""
    return hasattr(cache, "layers") and hasattr(cache, "reorder_cache") and all(
        hasattr(layer, "reorder_cache") for layer in cache.layers
    )


def _fork_cache(cache: Any, rows: Any) -> Any:
    """A new cache holding rows ``rows`` (repeats allowed) of ``cache``; ``cache`` is untouched.

    ``reorder_cache`` rebinds each layer's key/value tensors to ``index_select`` results, so
    shallow copies of the cache and its layers are enough to keep the original intact.
    """
    import copy

    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    new.reorder_cache(rows)
    return new


@no_grad
def shared_prompt_scoring(
    model: Any,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    decodes: Sequence[tuple[Sequence[int], int]],
    *,
    pad_id: int,
    device: Any = None,
    batch_size: int = 32,
    until: Optional[Sequence[Optional[Callable[[Sequence[int]], bool]]]] = None,
    share_prefix: int = 0,
) -> tuple[list[TFResult], list[list[int]]] | None:
    """Teacher-forced pairs and greedy decodes computing every distinct prompt only once.

    Each batch of distinct prompts is run once (left-padded, KV cache kept); the cache is then
    forked per (prompt, target) row, every row feeds its target (teacher forcing) or its first
    greedy token in one right-padded block, and the decode rows go on step by step. The edit
    question (new and true target), paraphrases and neighbourhood prompts (scored and decoded)
    thus share their prompt computation. Returns ``None`` when the model's cache cannot be
    forked (the caller then uses :func:`teacher_forced` / :func:`greedy_decode`). ``until``: per
    decode, a test that ends it early, as in :func:`greedy_decode`.

    ``share_prefix``: when every prompt starts with the same run of at least this many tokens (an
    in-context editor's demonstrations), that run is computed once and its cache copied into every
    batch, so only each prompt's own tokens are computed per batch (0: never). Scores then equal
    the full computation's up to float rounding.
    """
    import torch

    device = device if device is not None else model_device(model)
    keep_ok = accepts_kwarg(model, "logits_to_keep")
    users: dict[tuple[int, ...], list[tuple[str, int]]] = {}
    for i, (p, _) in enumerate(pairs):
        users.setdefault(tuple(p), []).append(("tf", i))
    for i, (p, n) in enumerate(decodes):
        if n > 0:
            users.setdefault(tuple(p), []).append(("dec", i))
    tf: list[TFResult | None] = [None] * len(pairs)
    dec: list[list[int]] = [[] for _ in decodes]
    prompts = list(users)
    step = max(1, batch_size)
    overhead = call_overhead(device)
    head, n_head = _shared_head(model, prompts, share_prefix, device, keep_ok) if share_prefix > 0 else (None, 0)
    # every prompt group runs its own greedy loop, so a group also costs the decode steps
    steps = max([n for _, n in decodes] + [1])
    for group in group_by_length([len(p) - n_head for p in prompts], max_size=step, overhead=overhead * steps):
        batch = [prompts[g] for g in group]
        ids, mask, pos = left_pad([p[n_head:] for p in batch], pad_id, device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
        if head is not None:  # the shared head's cache, one copy per row; its tokens come first in every row
            kwargs["past_key_values"] = _fork_cache(head, torch.zeros(len(batch), dtype=torch.long, device=ids.device))
            mask = torch.cat([torch.ones((len(batch), n_head), dtype=mask.dtype, device=mask.device), mask], dim=-1)
            pos = pos + n_head
            kwargs.update(attention_mask=mask, position_ids=pos)
        if keep_ok:
            kwargs["logits_to_keep"] = 1
        out = model(**kwargs)
        cache = getattr(out, "past_key_values", None)
        if cache is None or not _forkable(cache):
            return None
        last = out.logits[:, -1, :].float()
        last_lse = torch.logsumexp(last, -1)
        last_top = last.argmax(-1)
        # rows: (prompt row b, kind, index, continuation tokens)
        rows = []
        for b, prompt in enumerate(batch):
            for kind, i in users[prompt]:
                if kind == "tf":
                    rows.append((b, kind, i, list(pairs[i][1])[:-1]))
                else:
                    rows.append((b, kind, i, [int(last_top[b])] if decodes[i][1] > 1 else []))
        for group in group_by_length([len(r[3]) for r in rows], max_size=4 * step, overhead=overhead,
                                     max_positions=MAX_LOGIT_POSITIONS):
            _continue_rows(model, [rows[g] for g in group], cache, mask, pos, last, last_lse, last_top, pairs,
                           decodes, tf, dec, pad_id=pad_id, keep_ok=keep_ok, until=until)
    return tf, dec  # type: ignore[return-value]


def common_prefix(seqs: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The longest run of tokens every sequence starts with."""
    if not seqs:
        return ()
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return tuple(first[:n])


def _shared_head(model: Any, prompts: Sequence[Sequence[int]], at_least: int, device: Any,
                 keep_ok: bool) -> tuple[Any, int]:
    """(cache of the prompts' common head, its length), or (None, 0) when it is shorter than ``at_least``.

    Every prompt keeps at least its last token out of the head: its logits start the scoring.
    """
    import torch

    head = common_prefix(prompts)[: min(len(p) for p in prompts) - 1] if prompts else ()
    if len(head) < at_least:
        return None, 0
    n = len(head)
    kwargs: dict[str, Any] = {"input_ids": torch.tensor([head], device=device),
                              "attention_mask": torch.ones((1, n), dtype=torch.long, device=device),
                              "position_ids": torch.arange(n, device=device)[None], "use_cache": True}
    if keep_ok:
        kwargs["logits_to_keep"] = 1
    cache = getattr(model(**kwargs), "past_key_values", None)
    if cache is None or not _forkable(cache):
        return None, 0
    return cache, n


def _continue_rows(model: Any, chunk: list[Any], cache: Any, mask: Any, pos: Any, last: Any, last_lse: Any,
                   last_top: Any, pairs: Any, decodes: Any, tf: list[Any], dec: list[list[int]], *, pad_id: int,
                   keep_ok: bool, until: Optional[Sequence[Any]] = None) -> None:
    """Score/decode one chunk of rows that continue prompts already in ``cache``."""
    import torch

    if not chunk:
        return
    dev = mask.device
    b_idx = torch.tensor([r[0] for r in chunk], device=dev)
    width = max(len(r[3]) for r in chunk)
    logits = None
    row_mask = mask[b_idx]
    last_pos = pos[b_idx, -1]
    sub = None
    if width > 0:
        sub = _fork_cache(cache, b_idx)
        cont = torch.full((len(chunk), width), pad_id, dtype=torch.long, device=dev)
        cmask = torch.zeros((len(chunk), width), dtype=row_mask.dtype, device=dev)
        for r, row in enumerate(chunk):
            if row[3]:
                cont[r, : len(row[3])] = torch.tensor(row[3], dtype=torch.long, device=dev)
                cmask[r, : len(row[3])] = 1
        row_mask = torch.cat([row_mask, cmask], dim=-1)
        cpos = last_pos[:, None] + 1 + torch.arange(width, device=dev)[None, :]
        out = model(input_ids=cont, attention_mask=row_mask, position_ids=cpos, past_key_values=sub, use_cache=True)
        logits = out.logits[:, -width:, :].float()
        sub = out.past_key_values
    decode_rows = []
    for r, (b, kind, i, cont_tokens) in enumerate(chunk):
        if kind == "tf":
            target = list(pairs[i][1])
            t0 = target[0]
            lp = float(last[b, t0] - last_lse[b])
            am = [int(last_top[b])]
            if len(target) > 1:
                seg = logits[r, : len(target) - 1]
                tgt = torch.tensor(target[1:], device=seg.device)
                lp += float((seg.gather(-1, tgt[:, None])[:, 0] - torch.logsumexp(seg, -1)).sum())
                am += seg.argmax(-1).tolist()
            tf[i] = TFResult(lp, am, sum(a == t for a, t in zip(am, target)) / len(target))
        else:
            n = decodes[i][1]
            if n == 1:
                dec[i] = [int(last_top[b])]
            else:
                decode_rows.append((r, i, [int(last_top[b]), int(logits[r, 0].argmax())]))
    if not decode_rows:
        return
    # the decode rows go on from the forked cache, one token a step; a row leaves the batch once it has
    # its n tokens or its answer is complete (``until``)
    stop = DecodeStop([decodes[i][1] for _, i, _ in decode_rows],
                      [until[i] for _, i, _ in decode_rows] if until is not None else None,
                      [g for _, _, g in decode_rows])
    active = stop.active
    if active:
        sel = torch.tensor([decode_rows[k][0] for k in active], device=dev)
        sub = select_cache_rows(sub, sel)  # a forked cache can always select rows (_forkable)
        dmask = row_mask[sel]
        dpos = last_pos[sel] + 1  # position of the first generated token
        nxt = torch.tensor([stop.tokens[k][-1] for k in active], device=dev)
        running = active
    while active:
        sub, running, (dmask, dpos, nxt) = drop_finished_rows(sub, running, active, (dmask, dpos, nxt))
        dmask = torch.cat([dmask, torch.ones_like(dmask[:, :1])], dim=-1)
        dpos = dpos + 1
        kwargs: dict[str, Any] = {"input_ids": nxt[:, None], "attention_mask": dmask, "position_ids": dpos[:, None],
                                  "past_key_values": sub, "use_cache": True}
        if keep_ok:
            kwargs["logits_to_keep"] = 1
        out = model(**kwargs)
        sub = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(-1)
        active = stop.add(running, nxt.tolist())
    for k, (_, i, _) in enumerate(decode_rows):
        dec[i] = stop.tokens[k][: decodes[i][1]]
