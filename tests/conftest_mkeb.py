"""Helpers for the MKEB tests (imported by tests/test_mkeb_*.py; not a pytest conftest).

Builds local tokenizers of the kinds the metrics must handle, a stub LM with fixed bigram
logits for hand-computed metric values, and writers for BMIKE-53-layout files.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

CORPUS = [
    "The capital of France is Paris. Where does Spike Hughes originate from? London",
    "法国的首都是巴黎。斯派克·休斯来自哪里？伦敦",
    "フランスの首都はパリです。ロンドン",
    "เมืองหลวงของฝรั่งเศสคือปารีส ลอนดอน",
    "Paris London Berlin Philadelphia x",
]


def bmike53_dir() -> Path:
    """The shared BMIKE-53 CounterFact folder (``../shared`` beside the repository)."""
    env = os.environ.get("MEMLA_BMIKE53_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "bmike53" / "counterfact"


def byte_level_tok(bos: bool = False):
    """GPT-2/Qwen2-style byte-level BPE (no BOS), or Llama-3-style with a BOS template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>"] + (["<|begin_of_text|>"] if bos else [])
    tk.train_from_iterator(CORPUS * 3, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    kwargs: dict[str, Any] = {}
    if bos:
        bos_id = tk.token_to_id("<|begin_of_text|>")
        tk.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos_id)])
        kwargs["bos_token"] = "<|begin_of_text|>"
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>", **kwargs)


def sentencepiece_like_tok():
    """Llama-2-style: Metaspace dummy prefix ("▁word") and a ``<s>`` BOS on every encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tk.train_from_iterator(CORPUS * 3, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tk.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


STUB_WORDS = ["<pad>", "Q", "R", "N", "M", "?", "!", "A", "B", "C", "D", "x"]


def word_tok():
    """Word-level tokenizer over STUB_WORDS: one token per word, spaces not part of tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(STUB_WORDS)}, unk_token="x"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="x")


class BigramStub(torch.nn.Module):
    """LM whose next-token distribution depends only on the current token: P(. | w) = probs[w].

    Logits are log-probabilities, so hand computation is a product of table entries. It takes
    and returns a dummy cache so the KV-cache decoding path is exercised.
    """

    def __init__(self, probs: dict[str, dict[str, float]]):
        super().__init__()
        v = len(STUB_WORDS)
        table = torch.full((v, v), 0.0)
        for prev, dist in probs.items():
            rest = 1.0 - sum(dist.values())
            free = [w for w in STUB_WORDS if w not in dist]
            row = {w: rest / len(free) for w in free}
            row.update(dist)
            table[STUB_WORDS.index(prev)] = torch.tensor([math.log(row[w]) for w in STUB_WORDS])
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.calls: list[dict[str, Any]] = []

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None, **kwargs):
        self.calls.append({"shape": tuple(input_ids.shape), "cache": past_key_values is not None})
        return SimpleNamespace(logits=self.table[input_ids], past_key_values=("stub-cache",) if use_cache else None)


def mkeb_record(example_id: Any = 1, langs=("en", "zh"), **override: Any) -> dict[str, Any]:
    """A valid raw MKEB record in ``langs`` (override top-level fields with keyword arguments)."""
    rec = {
        "example_id": example_id,
        "relation_description": "origin",
        "edit": {lang: {"prompt": "Where does {} come from?", "subject": f"S{lang}", "target_new": "Paris",
                        "target_true": "London"} for lang in langs},
        "paraphrase_prompts": {lang: [f"Home town of S{lang}?"] for lang in langs},
        "neighborhood_prompts": {lang: ["Where was T born?"] for lang in langs},
        "neighborhood_answers": {lang: ["Berlin"] for lang in langs},
        "multi_hop_questions": {lang: [f"Food of the city S{lang} comes from?"] for lang in langs},
        "multi_hop_new_answer": {lang: "Croissant" for lang in langs},
    }
    rec.update(override)
    return rec


def bmike_item(case_id: int, lang: str, *, subject: str, src: str, old: str | None = "London", alt: str = "Paris",
               port: bool = True) -> dict[str, Any]:
    """One language part of a BMIKE-53 item."""
    part: dict[str, Any] = {"case_id": case_id, "subject": subject, "src": src, "rephrase": f"Reworded: {src}",
                            "alt": alt, "loc": "Where was Kathryn Newton born?", "loc_ans": "London"}
    if old is not None:
        part["old"] = old
    if port:
        part["port"] = f"What food is linked to the city {subject} comes from?"
        part["port_ans"] = "Cheesesteaks"
    return part


def write_bmike(folder: Path, split: str, items_by_lang: dict[str, list[dict[str, Any]]], *, name_lang=None) -> None:
    """Write ``<split>_test_<lang>.json`` files; each item list holds {"en": ..., lang: ...} dicts."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, items in items_by_lang.items():
        fname = f"{split}_test_{(name_lang or {}).get(lang, lang)}.json"
        (folder / fname).write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
