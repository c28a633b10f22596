"""The batched scoring engine: teacher-forced log-probabilities and greedy decoding.

Sequences are left-padded with explicit position ids (right for GPT-2 and Qwen2/Llama
alike) and logits are kept only at target positions; greedy decoding runs batched with a KV
cache. :func:`group_by_length` chooses batches that waste few padded positions. Nothing
here knows about records or metrics; torch is imported only when a function runs.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "MAX_LOGIT_POSITIONS",
    "TFResult",
    "accepts_kwarg",
    "call_overhead",
    "greedy_decode",
    "group_by_length",
    "left_pad",
    "model_device",
    "no_grad",
    "pad_id_of",
    "teacher_forced",
]


def no_grad(fn: Any) -> Any:
    """Run ``fn`` under ``torch.no_grad()`` (torch imported only when called)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


def model_device(model: Any) -> Any:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def accepts_kwarg(model: Any, name: str) -> bool:
    """Whether ``model.forward`` takes keyword ``name`` (e.g. ``logits_to_keep``, newer transformers only)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def pad_id_of(tok: Any) -> int:
    """A padding id for left padding: pad, else EOS, else BOS, else 0 (masked out either way)."""
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tok, name, None)
        if value is not None:
            return int(value)
    return 0


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """Left-padded ids, attention mask and position ids counting only real tokens."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if s:
            ids[row, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[row, width - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


@dataclass
class TFResult:
    """Teacher-forced result for one (prompt, target) pair."""

    logprob: float  # sum of log P(target token) over all target tokens
    argmax: list[int]  # argmax prediction at each target position
    correct: float  # share of positions where argmax == target token

    @property
    def mean_logprob(self) -> float:
        """Mean log-probability per target token: ROME's length-normalised comparison reads this."""
        return self.logprob / max(len(self.argmax), 1)


@no_grad
def teacher_forced(
    model: Any,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int,
    device: Any = None,
    batch_size: int = 32,
) -> list[TFResult]:
    """Score (prompt ids, target ids) pairs in left-padded batches, logits only at target positions."""
    import torch

    device = device if device is not None else model_device(model)
    results: list[TFResult | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    keep_ok = accepts_kwarg(model, "logits_to_keep")
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start: start + max(1, batch_size)]
        # the last target token is only a label, never an input
        seqs = [list(pairs[i][0]) + list(pairs[i][1])[:-1] for i in chunk]
        lens = [len(pairs[i][1]) for i in chunk]
        keep = max(lens)
        ids, mask, pos = left_pad(seqs, pad_id, device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": False}
        if keep_ok:
            kwargs["logits_to_keep"] = keep
        logits = model(**kwargs).logits[:, -keep:, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        top = logits.argmax(-1).tolist()
        for row, i in enumerate(chunk):
            target = list(pairs[i][1])
            k = len(target)
            cols = list(range(keep - k, keep))
            lp = logp[row, cols, :].gather(-1, torch.tensor(target, device=logp.device)[:, None]).sum().item()
            am = [top[row][c] for c in cols]
            results[i] = TFResult(float(lp), am, sum(a == t for a, t in zip(am, target)) / k)
    return results  # type: ignore[return-value]


@no_grad
def greedy_decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    n_new: Sequence[int],
    *,
    pad_id: int,
    device: Any = None,
    batch_size: int = 32,
) -> list[list[int]]:
    """Greedy-decode ``n_new[i]`` tokens after each prompt; left-padded batches with a KV cache."""
    import torch

    device = device if device is not None else model_device(model)
    out: list[list[int]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    keep_ok = accepts_kwarg(model, "logits_to_keep")
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start: start + max(1, batch_size)]
        steps = max(n_new[i] for i in chunk)
        if steps <= 0:
            continue
        ids, mask, pos = left_pad([prompts[i] for i in chunk], pad_id, device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
        if keep_ok:
            kwargs["logits_to_keep"] = 1
        res = model(**kwargs)
        cache = getattr(res, "past_key_values", None)
        nxt = res.logits[:, -1, :].argmax(-1)
        generated = [nxt]
        last_pos = pos[:, -1]
        for _ in range(steps - 1):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            last_pos = last_pos + 1
            if cache is not None:
                kwargs = {"input_ids": nxt[:, None], "attention_mask": mask, "position_ids": last_pos[:, None],
                          "past_key_values": cache, "use_cache": True}
            else:  # a model without a cache: recompute the whole sequence
                ids = torch.cat([ids, nxt[:, None]], dim=-1)
                pos = torch.cat([pos, last_pos[:, None]], dim=-1)
                kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": False}
            if keep_ok:
                kwargs["logits_to_keep"] = 1
            res = model(**kwargs)
            cache = getattr(res, "past_key_values", None) if cache is not None else None
            nxt = res.logits[:, -1, :].argmax(-1)
            generated.append(nxt)
        gen = torch.stack(generated, dim=-1).tolist()
        for row, i in enumerate(chunk):
            out[i] = gen[row][: n_new[i]]
    return out


#: Upper bound on (rows x positions) whose full-vocabulary logits are materialised at once.
MAX_LOGIT_POSITIONS = 1024


def group_by_length(lengths: Sequence[int], *, max_size: int, overhead: int, max_positions: int | None = None) -> list[list[int]]:
    """Split items into padded batches minimising padded positions plus a per-call overhead.

    Items are sorted longest first; a batch costs ``size * longest + overhead`` positions
    (``overhead``: what one extra forward call costs, in token positions: weight loading on a
    CPU, launch latency on a GPU). Exact dynamic programme over the sorted order, O(n * max_size).
    Returns lists of item indices.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j items
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for size in range(1, min(max_size, j) + 1):
            i = j - size
            width = max(lengths[order[i]], 1)  # longest item of the batch order[i:j]
            if max_positions is not None and size > 1 and size * width > max_positions:
                break
            cost = best[i] + size * width + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j]: j])
        j = cut[j]
    return groups[::-1]


def call_overhead(device: Any) -> int:
    """Per-call overhead in token positions for :func:`group_by_length`."""
    return 32 if str(getattr(device, "type", device)).startswith("cpu") else 256
