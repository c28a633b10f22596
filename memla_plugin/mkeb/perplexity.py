"""Multilingual perplexity of a model on held-out text: the downstream cost of an edit.

An edit should change one fact and leave the model's language modelling alone. The MEMLA paper
shows this with downstream tasks that cannot be run offline here; the stand-in is the
perplexity of plain sentences in each MKEB language, measured before and after an edit.

Perplexity of a language = exp(summed negative log-likelihood / number of predicted tokens)
over all its texts (token-weighted, so long and short texts count by their tokens). Each text
is tokenised on its own (with the tokenizer's leading special tokens, never a trailing EOS) and
every token after the first is predicted. Importing this module does not import torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from memla_plugin.tokenisation import encode_prompt, target_with_space

from .engine import evaluating, left_pad, model_device, pad_id_of


@dataclass(frozen=True)
class Perplexity:
    """One language's result: summed NLL (nats) over ``tokens`` predicted tokens in ``texts`` texts."""

    nll: float
    tokens: int
    texts: int

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"ppl": self.ppl, "nll": self.nll, "tokens": self.tokens, "texts": self.texts}


def heldout_texts(records: Iterable[Any], langs: Sequence[str]) -> dict[str, list[str]]:
    """Per language, each record's neighbourhood question followed by its gold answer.

    The answer is joined as the scorer joins targets (a space except in zh/ja/th). These are
    sentences about other facts than the edited one; the caller decides which records no
    edit, tuning or evaluation uses.
    """
    out: dict[str, list[str]] = {lang: [] for lang in langs}
    for rec in records:
        for lang in langs:
            prompts = rec.neighborhood_prompts.get(lang) or []
            answers = rec.neighborhood_answers.get(lang) or []
            for prompt, answer in zip(prompts, answers):
                text = (prompt.rstrip() + target_with_space(str(answer), lang)).strip()
                if text:
                    out[lang].append(text)
    return out


def sequence_nll(model: Any, seqs: Sequence[Sequence[int]], *, pad_id: int, batch_size: int = 8,
                 device: Any = None) -> list[tuple[float, int]]:
    """(summed NLL of tokens 2..L, L - 1) per id sequence, in left-padded batches.

    Runs under :func:`.engine.evaluating`: a model handed back in training mode (EasyEdit's LoRA
    wrapper) is measured without its adapter's dropout, as it is scored."""
    with evaluating(model):
        return _sequence_nll(model, seqs, pad_id, batch_size,
                             device if device is not None else model_device(model))


def _sequence_nll(model: Any, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int,
                  device: Any) -> list[tuple[float, int]]:
    import torch

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths share a batch
    out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    for start in range(0, len(order), max(1, batch_size)):
        chunk = [i for i in order[start:start + batch_size] if len(seqs[i]) > 1]
        if not chunk:
            continue
        ids, mask, pos = left_pad([seqs[i] for i in chunk], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        real = mask[:, 1:].bool() & mask[:, :-1].bool()  # a predicted token and a real one before it
        nll = -(logp * real).sum(-1)
        for row, i in enumerate(chunk):
            out[i] = (float(nll[row].item()), int(real[row].sum().item()))
    return out


def perplexity(model: Any, tok: Any, texts: Mapping[str, Sequence[str]], *, batch_size: int = 8,
               device: Any = None) -> dict[str, Perplexity]:
    """Perplexity per language of ``texts`` ({lang: [text]}) under ``model``."""
    pad = pad_id_of(tok)
    result: dict[str, Perplexity] = {}
    for lang, items in texts.items():
        seqs = [encode_prompt(tok, t) for t in items]
        scored = sequence_nll(model, seqs, pad_id=pad, batch_size=batch_size, device=device)
        result[lang] = Perplexity(sum(n for n, _ in scored), sum(k for _, k in scored), len(items))
    return result


def summary(per_lang: Mapping[str, Perplexity]) -> dict[str, Any]:
    """JSON form: per language, and the mean over languages of each language's perplexity."""
    langs = {lang: p.to_json() for lang, p in per_lang.items()}
    finite = [p.ppl for p in per_lang.values() if p.tokens]
    return {"langs": langs, "mean_ppl": sum(finite) / len(finite) if finite else None}


__all__ = ["Perplexity", "heldout_texts", "perplexity", "sequence_nll", "summary"]
