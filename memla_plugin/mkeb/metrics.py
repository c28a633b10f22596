"""MKEB metrics (DESIGN §4) and EasyEdit's teacher-forced token-accuracy family.

Per evaluation language:

* ``ES`` edit success: 1 if P(target_new | question) > P(target_true | question), where the
  probability of a target is the product over all its tokens, teacher forced.
* ``PS`` paraphrase score: the same comparison averaged over the paraphrase prompts.
* ``NS`` neighbourhood score: greedy-decode as many tokens as the gold answer has, token-set
  F1 against the gold answer, averaged over neighbourhood prompts.
* ``MQ`` multi-hop score: the same F1 on the multi-hop questions against the new answer.
* ``rel_acc`` / ``gen_acc`` / ``port_acc``: EasyEdit's teacher-forced token accuracy (share of
  target positions whose argmax equals the target token) on the edit question, the
  paraphrases (mean) and the multi-hop questions (mean).
* ``loc_acc``: as EasyEdit does it, the share of neighbourhood answer positions where the
  model's teacher-forced argmax equals the *unedited* model's argmax. It needs the unedited
  model's outputs (:func:`unedited_reference`); without them it is ``None``; for the unedited
  model itself it is 1.0 by definition.

A metric whose inputs the data lack (e.g. ES/PS without ``target_true`` in zsRE) is ``None``.

Token-set F1 compares the tokenizer's tokens with the word-boundary marker (GPT-2's ``Ġ``,
SentencePiece's ``▁``) removed, so " London" and "London" count as the same token; working on
tokens rather than whitespace-separated words keeps the score meaningful for zh/ja/th.

All teacher-forced sequences of a record (every language, edit and paraphrase prompts with
both targets, neighbourhood and multi-hop answers) are scored in a few left-padded batches
with explicit position ids (right for GPT-2 and Qwen2/Llama alike), logits kept only at
target positions; greedy decoding is batched with a KV cache.
"""
from __future__ import annotations

import functools
import inspect
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from memla_plugin.errors import EmptyTargetError, MEMLAError

from .schema import NO_SPACE_LANGS, MKEBRecord

Scores = dict[str, dict[str, Any]]


class MetricConfigError(MEMLAError, ValueError):
    """A scoring option is invalid (e.g. a prompt template without ``{}``)."""

# --------------------------------------------------------------------------- tokenisation

_SPACE_PREFIX_CACHE: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()
_WORD_MARKERS = ("Ġ", "▁", " ")


def _ids(tok: Any, text: str, special: bool) -> list[int]:
    return list(tok(text, add_special_tokens=special)["input_ids"])


def uses_space_prefix(tok: Any) -> bool:
    """Whether words after a space are encoded with the space folded into their tokens.

    True for byte-level BPE (GPT-2, Qwen2, Llama-3): a target after a question needs a
    leading space to be tokenised as the model would continue. False where whitespace is
    dropped by pre-tokenisation (word-level/WordPiece) or where the tokenizer adds a
    SentencePiece dummy prefix itself (Llama-2, mT5), since an extra space would add a token.
    """
    try:
        return _SPACE_PREFIX_CACHE[tok]
    except (KeyError, TypeError):
        pass
    plain, spaced = _ids(tok, "x", False), _ids(tok, " x", False)
    if plain == spaced:
        result = False
    else:
        first = tok.convert_ids_to_tokens(plain[:1])
        result = not (first and str(first[0]).startswith("▁"))
    try:
        _SPACE_PREFIX_CACHE[tok] = result
    except TypeError:
        pass
    return result


def target_with_space(text: str, lang: str, tok: Any) -> str:
    """The target string as it should follow a prompt in ``lang``.

    No leading space for languages written without spaces (zh, ja, th); otherwise one
    leading space exactly when the tokenizer folds spaces into tokens (:func:`uses_space_prefix`).
    """
    text = text.strip()
    if not text or lang in NO_SPACE_LANGS or not uses_space_prefix(tok):
        return text
    return " " + text


def encode_prompt(tok: Any, text: str) -> list[int]:
    """Prompt ids with the tokenizer's leading special tokens (BOS) but never a trailing EOS."""
    ids = _ids(tok, text, True)
    eos = getattr(tok, "eos_token_id", None)
    if eos is not None and len(ids) > 1 and ids[-1] == eos and text and _ids(tok, text, False)[-1:] != [eos]:
        ids = ids[:-1]
    return ids


_encode_prompt = encode_prompt


def encode_target(tok: Any, text: str, lang: str, *, where: str = "target") -> list[int]:
    """Target ids: leading-space rule applied, no special tokens (no BOS inside targets)."""
    ids = _ids(tok, target_with_space(text, lang, tok), False)
    bos = getattr(tok, "bos_token_id", None)
    while ids and bos is not None and ids[0] == bos and bos != getattr(tok, "eos_token_id", None):
        ids = ids[1:]
    if not ids:
        raise EmptyTargetError(f"{where} ({lang}): {text!r} tokenises to zero tokens")
    return ids


def canonical_tokens(tok: Any, ids: Sequence[int]) -> set[str]:
    """Token strings without word-boundary markers, for token-set F1."""
    out: set[str] = set()
    for piece in tok.convert_ids_to_tokens(list(ids)):
        piece = str(piece)
        while piece[:1] in _WORD_MARKERS and piece:
            piece = piece[1:]
        if piece:
            out.add(piece)
    return out


def token_set_f1(pred: set[str], gold: set[str]) -> float:
    """F1 between two token sets (0 when either is empty)."""
    common = len(pred & gold)
    if not pred or not gold or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- batched engines


def _no_grad(fn: Any) -> Any:
    """Run ``fn`` under ``torch.no_grad()`` (torch imported only when called)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


def _model_device(model: Any) -> Any:
    import torch

    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _accepts(model: Any, name: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _pad_id(tok: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tok, name, None)
        if value is not None:
            return int(value)
    return 0


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
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


@_no_grad
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

    device = device if device is not None else _model_device(model)
    results: list[TFResult | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    keep_ok = _accepts(model, "logits_to_keep")
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start: start + max(1, batch_size)]
        # the last target token is only a label, never an input
        seqs = [list(pairs[i][0]) + list(pairs[i][1])[:-1] for i in chunk]
        lens = [len(pairs[i][1]) for i in chunk]
        keep = max(lens)
        ids, mask, pos = _left_pad(seqs, pad_id, device)
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


@_no_grad
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

    device = device if device is not None else _model_device(model)
    out: list[list[int]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    keep_ok = _accepts(model, "logits_to_keep")
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start: start + max(1, batch_size)]
        steps = max(n_new[i] for i in chunk)
        if steps <= 0:
            continue
        ids, mask, pos = _left_pad([prompts[i] for i in chunk], pad_id, device)
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


def _call_overhead(device: Any) -> int:
    """Per-call overhead in token positions for :func:`group_by_length`."""
    return 32 if str(getattr(device, "type", device)).startswith("cpu") else 256


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


@_no_grad
def shared_prompt_scoring(
    model: Any,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    decodes: Sequence[tuple[Sequence[int], int]],
    *,
    pad_id: int,
    device: Any = None,
    batch_size: int = 32,
) -> tuple[list[TFResult], list[list[int]]] | None:
    """Teacher-forced pairs and greedy decodes computing every distinct prompt only once.

    Each batch of distinct prompts is run once (left-padded, KV cache kept); the cache is then
    forked per (prompt, target) row, every row feeds its target (teacher forcing) or its first
    greedy token in one right-padded block, and the decode rows go on step by step. The edit
    question (new and true target), paraphrases and neighbourhood prompts (scored and decoded)
    thus share their prompt computation. Returns ``None`` when the model's cache cannot be
    forked (the caller then uses :func:`teacher_forced` / :func:`greedy_decode`).
    """
    import torch

    device = device if device is not None else _model_device(model)
    keep_ok = _accepts(model, "logits_to_keep")
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
    overhead = _call_overhead(device)
    # every prompt group runs its own greedy loop, so a group also costs the decode steps
    steps = max([n for _, n in decodes] + [1])
    for group in group_by_length([len(p) for p in prompts], max_size=step, overhead=overhead * steps):
        batch = [prompts[g] for g in group]
        ids, mask, pos = _left_pad(batch, pad_id, device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
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
                           decodes, tf, dec, pad_id=pad_id, keep_ok=keep_ok)
    return tf, dec  # type: ignore[return-value]


def _continue_rows(model: Any, chunk: list[Any], cache: Any, mask: Any, pos: Any, last: Any, last_lse: Any,
                   last_top: Any, pairs: Any, decodes: Any, tf: list[Any], dec: list[list[int]], *, pad_id: int,
                   keep_ok: bool) -> None:
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
    need = max(decodes[i][1] for _, i, _ in decode_rows)
    sel = torch.tensor([r for r, _, _ in decode_rows], device=dev)
    gen = [g for _, _, g in decode_rows]
    if need > 2:
        sub.reorder_cache(sel)
        dmask = row_mask[sel]
        dpos = last_pos[sel] + 1  # position of the first generated token
        nxt = torch.tensor([g[-1] for g in gen], device=dev)
        for _ in range(need - 2):
            dmask = torch.cat([dmask, torch.ones_like(dmask[:, :1])], dim=-1)
            dpos = dpos + 1
            kwargs: dict[str, Any] = {"input_ids": nxt[:, None], "attention_mask": dmask, "position_ids": dpos[:, None],
                                      "past_key_values": sub, "use_cache": True}
            if keep_ok:
                kwargs["logits_to_keep"] = 1
            out = model(**kwargs)
            sub = out.past_key_values
            nxt = out.logits[:, -1, :].argmax(-1)
            for g, t in zip(gen, nxt.tolist()):
                g.append(int(t))
    for (_, i, _), g in zip(decode_rows, gen):
        dec[i] = g[: decodes[i][1]]


# --------------------------------------------------------------------------- record scoring


@dataclass
class UneditedReference:
    """The unedited model's results on one record, computed once and reused.

    ``scores`` are the unedited model's own scores (the reference row of every report);
    ``loc_tokens`` its teacher-forced argmax on each neighbourhood answer, against which an
    edited model's ``loc_acc`` is measured.
    """

    example_id: Any
    scores: Scores
    loc_tokens: dict[str, list[list[int]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"example_id": self.example_id, "scores": self.scores, "loc_tokens": self.loc_tokens}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "UneditedReference":
        return cls(raw["example_id"], raw["scores"], raw.get("loc_tokens", {}))


class _Plan:
    """Collects the teacher-forced pairs and decode prompts of several records, deduplicated."""

    def __init__(self) -> None:
        self.pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.pair_index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        self.decodes: list[tuple[tuple[int, ...], int]] = []
        self.decode_index: dict[tuple[tuple[int, ...], int], int] = {}

    def pair(self, prompt: Sequence[int], target: Sequence[int]) -> int:
        key = (tuple(prompt), tuple(target))
        if key not in self.pair_index:
            self.pair_index[key] = len(self.pairs)
            self.pairs.append(key)
        return self.pair_index[key]

    def decode(self, prompt: Sequence[int], n: int) -> int:
        key = (tuple(prompt), n)
        if key not in self.decode_index:
            self.decode_index[key] = len(self.decodes)
            self.decodes.append(key)
        return self.decode_index[key]


def _plan_record(tok: Any, record: MKEBRecord, langs: Sequence[str], plan: _Plan, max_new_tokens: int | None,
                 prompt_template: str = "{}") -> dict[str, Any]:
    """Per language: indices into the plan for every quantity a metric needs."""

    def encode_prompt(tok: Any, text: str) -> list[int]:  # every evaluated prompt goes through the template
        return _encode_prompt(tok, prompt_template.replace("{}", text, 1))
    spec: dict[str, Any] = {}
    rid = record.example_id
    for lang in langs:
        fact = record.fact(lang)
        where = f"record {rid}, lang {lang!r}"
        new = encode_target(tok, fact.target_new, lang, where=f"{where}, field 'edit.target_new'")
        true = (
            encode_target(tok, fact.target_true, lang, where=f"{where}, field 'edit.target_true'")
            if fact.target_true
            else None
        )
        s: dict[str, Any] = {}
        q = encode_prompt(tok, fact.question)
        s["edit_new"] = plan.pair(q, new)
        s["edit_true"] = plan.pair(q, true) if true else None
        paras = [encode_prompt(tok, p) for p in record.paraphrase_prompts.get(lang, [])]
        s["para_new"] = [plan.pair(p, new) for p in paras]
        s["para_true"] = [plan.pair(p, true) for p in paras] if true else None

        def answers(prompts: Sequence[str], golds: Sequence[str], field_name: str) -> list[tuple[int, int, list[int]]]:
            items = []
            for prompt, gold in zip(prompts, golds):
                gid = encode_target(tok, gold, lang, where=f"{where}, field {field_name!r}")
                p = encode_prompt(tok, prompt)
                n = len(gid) if max_new_tokens is None else min(len(gid), max_new_tokens)
                items.append((plan.pair(p, gid), plan.decode(p, n), gid))
            return items

        s["loc"] = answers(record.neighborhood_prompts.get(lang, []), record.neighborhood_answers.get(lang, []),
                           "neighborhood_answers")
        mh_q = record.multi_hop_questions.get(lang, [])
        mh_a = record.multi_hop_new_answer.get(lang)
        s["port"] = answers(mh_q, [mh_a] * len(mh_q), "multi_hop_new_answer") if mh_a else []
        spec[lang] = s
    return spec


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _finish(tok: Any, spec: dict[str, Any], tf: list[TFResult], dec: list[list[int]],
            reference: UneditedReference | None, own_reference: bool) -> tuple[Scores, dict[str, list[list[int]]]]:
    scores: Scores = {}
    loc_tokens: dict[str, list[list[int]]] = {}
    for lang, s in spec.items():
        r: dict[str, Any] = {}
        if s["edit_true"] is not None:
            r["ES"] = float(tf[s["edit_new"]].logprob > tf[s["edit_true"]].logprob)
            r["PS"] = _mean(float(tf[a].logprob > tf[b].logprob) for a, b in zip(s["para_new"], s["para_true"]))
        else:
            r["ES"] = r["PS"] = None
        r["NS"] = _mean(token_set_f1(canonical_tokens(tok, dec[d]), canonical_tokens(tok, g)) for _, d, g in s["loc"])
        r["MQ"] = _mean(token_set_f1(canonical_tokens(tok, dec[d]), canonical_tokens(tok, g)) for _, d, g in s["port"])
        r["rel_acc"] = tf[s["edit_new"]].correct
        r["gen_acc"] = _mean(tf[a].correct for a in s["para_new"])
        loc_tokens[lang] = [tf[p].argmax for p, _, _ in s["loc"]]
        if own_reference:
            r["loc_acc"] = 1.0 if s["loc"] else None
        elif reference is not None and lang in reference.loc_tokens:
            ref = reference.loc_tokens[lang]
            r["loc_acc"] = _mean(
                sum(a == b for a, b in zip(mine, theirs)) / max(len(mine), 1)
                for mine, theirs in zip(loc_tokens[lang], ref)
            )
        else:
            r["loc_acc"] = None
        r["port_acc"] = _mean(tf[p].correct for p, _, _ in s["port"])
        scores[lang] = r
    return scores, loc_tokens


def _run(model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str] | None, *, device: Any,
         batch_size: int, max_new_tokens: int | None, references: Sequence[UneditedReference | None] | None,
         own_reference: bool, share_prompts: bool = True, prompt_template: str = "{}") -> list[tuple[Scores, dict[str, list[list[int]]]]]:
    import torch

    plan = _Plan()
    if "{}" not in prompt_template:
        raise MetricConfigError(f"prompt_template {prompt_template!r} has no '{{}}' for the question")
    specs = [_plan_record(tok, rec, langs or rec.langs, plan, max_new_tokens, prompt_template) for rec in records]
    pad = _pad_id(tok)
    was_training = bool(getattr(model, "training", False))
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            shared = (
                shared_prompt_scoring(model, plan.pairs, plan.decodes, pad_id=pad, device=device, batch_size=batch_size)
                if share_prompts else None
            )
            if shared is not None:
                tf, dec = shared
            else:
                tf = teacher_forced(model, plan.pairs, pad_id=pad, device=device, batch_size=batch_size)
                dec = greedy_decode(model, [p for p, _ in plan.decodes], [n for _, n in plan.decodes],
                                    pad_id=pad, device=device, batch_size=batch_size)
    finally:
        if was_training:
            model.train()
    refs = references or [None] * len(records)
    return [_finish(tok, spec, tf, dec, ref, own_reference) for spec, ref in zip(specs, refs)]


def score_record(
    model: Any,
    tok: Any,
    record: MKEBRecord,
    langs: Sequence[str] | None = None,
    *,
    device: Any = None,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    reference: UneditedReference | None = None,
    share_prompts: bool = True,
    prompt_template: str = "{}",
) -> Scores:
    """Score ``model`` on one record in ``langs`` (default: all of the record's languages).

    Returns ``{lang: {ES, PS, NS, MQ, rel_acc, gen_acc, loc_acc, port_acc}}``; a metric is
    ``None`` when the data lack what it needs, ``loc_acc`` is ``None`` unless ``reference``
    (the unedited model's outputs, see :func:`unedited_reference`) is given.
    ``share_prompts=False`` scores every (prompt, target) sequence separately (slower; the
    results are the same up to float rounding). ``prompt_template`` wraps every evaluated
    prompt (e.g. ``"Q: {}\nA:"``); the default evaluates the questions as they are, which is
    what EasyEdit does and what the edit methods are trained on.
    """
    return _run(model, tok, [record], langs, device=device, batch_size=batch_size, max_new_tokens=max_new_tokens,
                references=[reference], own_reference=False, share_prompts=share_prompts,
                prompt_template=prompt_template)[0][0]


def score_records(
    model: Any,
    tok: Any,
    records: Sequence[MKEBRecord],
    langs: Sequence[str] | None = None,
    *,
    device: Any = None,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    references: Sequence[UneditedReference | None] | None = None,
    share_prompts: bool = True,
    prompt_template: str = "{}",
) -> list[Scores]:
    """:func:`score_record` for several records with their batches pooled (same model state)."""
    return [s for s, _ in _run(model, tok, records, langs, device=device, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, references=references, own_reference=False,
                               share_prompts=share_prompts, prompt_template=prompt_template)]


def unedited_references(
    model: Any,
    tok: Any,
    records: Sequence[MKEBRecord],
    langs: Sequence[str] | None = None,
    *,
    device: Any = None,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    prompt_template: str = "{}",
) -> list[UneditedReference]:
    """The unedited model's scores and neighbourhood outputs for each record (``loc_acc`` = 1).

    Use the same ``prompt_template`` as for the edited model's :func:`score_record`.
    """
    out = _run(model, tok, records, langs, device=device, batch_size=batch_size, max_new_tokens=max_new_tokens,
               references=None, own_reference=True, prompt_template=prompt_template)
    return [UneditedReference(rec.example_id, s, loc) for rec, (s, loc) in zip(records, out)]


def unedited_reference(model: Any, tok: Any, record: MKEBRecord, langs: Sequence[str] | None = None,
                       **kwargs: Any) -> UneditedReference:
    """:func:`unedited_references` for one record."""
    return unedited_references(model, tok, [record], langs, **kwargs)[0]


class ReferenceCache:
    """Unedited-model references keyed by record id and languages, optionally kept in a JSON file.

    Lets the harness compute the unedited model's outputs once per record and reuse them for
    every method and source language, even across processes (pass ``path``). ``model_key``
    should name everything the outputs depend on (model, dtype, prompt template); a file
    written under another key is ignored.
    """

    def __init__(self, path: str | Path | None = None, model_key: str = "") -> None:
        self.path = Path(path) if path else None
        self.model_key = model_key
        self._data: dict[str, dict[str, Any]] = {}
        if self.path and self.path.is_file():
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("model_key", "") == model_key:
                self._data = raw.get("records", {})

    @staticmethod
    def _key(example_id: Any, langs: Sequence[str]) -> str:
        return f"{example_id}|{','.join(langs)}"

    def get(self, example_id: Any, langs: Sequence[str]) -> UneditedReference | None:
        raw = self._data.get(self._key(example_id, langs))
        return UneditedReference.from_json(raw) if raw else None

    def get_or_compute(self, model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str],
                       **kwargs: Any) -> list[UneditedReference]:
        """References for ``records``, computing (in pooled batches) only the missing ones.

        ``kwargs`` go to :func:`unedited_references` (device, batch_size, prompt_template, ...).
        """
        todo = [r for r in records if self.get(r.example_id, langs) is None]
        if todo:
            for ref in unedited_references(model, tok, todo, langs, **kwargs):
                self._data[self._key(ref.example_id, langs)] = ref.to_json()
            self.save()
        return [self.get(r.example_id, langs) for r in records]  # type: ignore[misc]

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            payload = {"model_key": self.model_key, "records": self._data}
            self.path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
