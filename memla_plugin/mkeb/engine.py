"""The batched scoring engine: teacher-forced log-probabilities and greedy decoding.

Sequences are left-padded with explicit position ids (right for GPT-2 and Qwen2/Llama
alike) and logits are kept only at target positions; greedy decoding runs batched with a KV
cache. :func:`group_by_length` chooses batches that waste few padded positions. Nothing
here knows about records or metrics; torch is imported only when a function runs.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

__all__ = [
    "DecodeStop",
    "MAX_LOGIT_POSITIONS",
    "TFResult",
    "accepts_kwarg",
    "call_overhead",
    "drop_finished_rows",
    "evaluating",
    "greedy_decode",
    "group_by_length",
    "left_pad",
    "model_device",
    "no_grad",
    "pad_id_of",
    "select_cache_rows",
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


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """No gradients and every module in eval mode for the duration; each module's mode comes back after.

    Every module in training mode is switched, not only the model: a PEFT adapter made on a model in
    eval mode (EasyEdit's LoRA) has its new modules, its dropout among them, in training mode, and the
    wrapper EasyEdit hands back is in training mode too. Measuring such a model as it is would apply the
    adapter's dropout to every forward pass."""
    import torch

    training = [m for m in model.modules() if m.training] if hasattr(model, "modules") else []
    for module in training:
        module.training = False
    try:
        with torch.no_grad():
            yield
    finally:
        for module in training:
            module.training = True


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
    until: Optional[Sequence[Optional[Callable[[Sequence[int]], bool]]]] = None,
) -> list[list[int]]:
    """Greedy-decode ``n_new[i]`` tokens after each prompt; left-padded batches with a KV cache.

    ``until[i]`` (optional): a test on prompt i's tokens so far; once it holds, the rest of its
    tokens are not needed, and the row leaves the batch (:class:`DecodeStop`). Its result is
    then a prefix of the full-length decode.
    """
    import torch

    device = device if device is not None else model_device(model)
    out: list[list[int]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    keep_ok = accepts_kwarg(model, "logits_to_keep")
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start: start + max(1, batch_size)]
        if max(n_new[i] for i in chunk) <= 0:
            continue
        ids, mask, pos = left_pad([prompts[i] for i in chunk], pad_id, device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
        if keep_ok:
            kwargs["logits_to_keep"] = 1
        res = model(**kwargs)
        cache = getattr(res, "past_key_values", None)
        nxt = res.logits[:, -1, :].argmax(-1)
        stop = DecodeStop([n_new[i] for i in chunk], [until[i] for i in chunk] if until is not None else None)
        running = list(range(len(chunk)))  # the chunk rows in the batch, in batch order
        active = stop.add(running, nxt.tolist())
        last_pos = pos[:, -1]
        while active:
            cache, running, (ids, pos, mask, last_pos, nxt) = drop_finished_rows(
                cache, running, active, (ids, pos, mask, last_pos, nxt))
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
            active = stop.add(running, nxt.tolist())
        for row, i in enumerate(chunk):
            out[i] = stop.tokens[row][: n_new[i]]
    return out


def select_cache_rows(cache: Any, rows: Any) -> Any:
    """``cache`` keeping only the batch rows ``rows`` (None when this cache type cannot do it)."""
    reorder = getattr(cache, "reorder_cache", None)
    if reorder is None:
        return None
    reorder(rows)  # transformers caches select batch rows in place (as beam search does)
    return cache


def drop_finished_rows(cache: Any, running: Sequence[int], active: Sequence[int],
                       tensors: tuple[Any, ...]) -> tuple[Any, list[int], tuple[Any, ...]]:
    """Shrink a decoding batch to its ``active`` rows: the cache and each per-row tensor.

    ``running`` names the rows now in the batch, in batch order (``active`` is a subset of it). A
    cache that cannot select rows keeps the batch as it is (its done rows are decoded and ignored);
    ``cache=None`` (a model without a cache) shrinks the tensors only.
    """
    import torch

    if len(active) == len(running):
        return cache, list(running), tensors
    rows = torch.tensor([running.index(r) for r in active], device=tensors[0].device)
    if cache is not None:
        smaller = select_cache_rows(cache, rows)
        if smaller is None:
            return cache, list(running), tensors
        cache = smaller
    return cache, list(active), tuple(t[rows] for t in tensors)


class DecodeStop:
    """Which rows of a greedy batch still need tokens, and every row's tokens so far.

    A row is done when it has its ``n`` tokens or its ``until`` test holds on its tokens so far;
    done stays done (the tests are monotone: see :func:`.generation.answer_complete`). A done
    row's later tokens are not kept, whether or not it is still computed in the batch.
    """

    def __init__(self, n: Sequence[int], until: Optional[Sequence[Optional[Callable[[Sequence[int]], bool]]]] = None,
                 tokens: Optional[Sequence[Sequence[int]]] = None) -> None:
        self.n = list(n)
        self.until = list(until) if until is not None else [None] * len(self.n)
        self.tokens: list[list[int]] = [[] for _ in self.n]
        self.done = [False] * len(self.n)
        self._check(range(len(self.n)))
        for r, given in enumerate(tokens or []):  # tokens already decoded, taken one at a time like later ones
            for t in given:
                self.add([r], [t])

    def _check(self, rows: Iterable[int]) -> None:
        for r in rows:
            if not self.done[r]:
                test = self.until[r]
                self.done[r] = len(self.tokens[r]) >= self.n[r] or (test is not None and test(self.tokens[r]))

    @property
    def active(self) -> list[int]:
        """The rows that still need tokens."""
        return [r for r, d in enumerate(self.done) if not d]

    def add(self, rows: Sequence[int], step: Sequence[int]) -> list[int]:
        """One step's tokens, ``step[k]`` for row ``rows[k]`` (ignored for done rows); the rows still active."""
        for r, t in zip(rows, step):
            if not self.done[r]:
                self.tokens[r].append(int(t))
        self._check(rows)
        return self.active


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
