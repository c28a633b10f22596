"""Benchmark text that is never evaluated: the MKEB/BMIKE-53 records outside the test and dev lists.

For the shipped conversion these are exactly the 200 records of ``train_ids.txt``.

ROME/MEMIT's second-moment statistics and MEND's training set need text from the model's
languages that no evaluated record contains. EasyEdit takes them from English Wikipedia,
which is not reachable offline and not multilingual; the held-out part of the shipped
CounterFact conversion is both local and in all 12 MKEB languages.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ..errors import DataValidationError
from ..hashing import file_sha256 as _sha256

LOG = logging.getLogger(__name__)

HELDOUT_OUT_OF = ("test", "dev")
#: When an MKEB file's id lists leave no record out (test = every record not in dev, as in splits
#: written with ``--n-train 0``), the last FALLBACK_TAIL ids of the test list are held out instead.
#: Test lists are in a fixed random order ("any prefix is a random sample"), so runs that evaluate the
#: first len(test) - FALLBACK_TAIL test ids never see them; the provenance records this.
FALLBACK_TAIL = 200


@dataclass
class HeldOut:
    """Records of the shipped MKEB data that are in none of the evaluated id lists."""

    records: list  # list[MKEBRecord]
    source: dict[str, Any] = field(default_factory=dict)



def heldout_records(path: Optional[str] = None, exclude: Sequence[str] = HELDOUT_OUT_OF) -> HeldOut:
    """Load the MKEB file (default: the shipped conversion) minus every id in ``exclude`` lists."""
    from ..mkeb import load_mkeb
    from ..mkeb.loader import read_test_ids, resolve_data_path, shipped_data_dir

    data_path = resolve_data_path(path)
    excluded: set[str] = set()
    id_files = {}
    for name in exclude:
        ids = read_test_ids(name)
        excluded.update(ids)
        id_file = shipped_data_dir() / f"{name}_ids.txt" if name in HELDOUT_OUT_OF else name
        id_files[str(name)] = {"n_ids": len(ids), "sha256": _sha256(id_file)}
    all_records = load_mkeb(data_path)
    records = [r for r in all_records if str(r.example_id) not in excluded]
    fallback = None
    if not records and "test" in exclude:
        test_ids = read_test_ids("test")
        tail = set(test_ids[-FALLBACK_TAIL:])
        records = [r for r in all_records if str(r.example_id) in tail]
        fallback = (
            f"no record lies outside the {'/'.join(exclude)} lists; held out the last {len(tail)} ids of "
            f"test_ids.txt instead: evaluate only the first {len(test_ids) - len(tail)} test ids "
            f"to stay disjoint from this text"
        )
        LOG.warning("held-out MKEB text: %s", fallback)
    if not records:
        raise DataValidationError(f"{data_path}: every record is in the {'/'.join(exclude)} id lists; no held-out text")
    source = {
        "file": data_path.name,
        "sha256": _sha256(data_path),
        "excluded_id_lists": id_files,
        "n_records": len(records),
        "fallback": fallback,
        "example_ids_sha256": hashlib.sha256(
            json.dumps(sorted(str(r.example_id) for r in records)).encode()
        ).hexdigest(),
    }
    return HeldOut(records=records, source=source)


def _join(question: str, answer: Optional[str], lang: str) -> str:
    from ..mkeb.schema import NO_SPACE_LANGS

    if not answer:
        return question
    return question + ("" if lang in NO_SPACE_LANGS else " ") + answer


def statement_texts(held: HeldOut) -> list[str]:
    """One text per (record, language): the question, its paraphrases and neighbourhood prompts,
    each followed by its *true* answer (no counterfactual target, no multi-hop answer)."""
    texts = []
    for record in held.records:
        for lang in record.langs:
            fact = record.fact(lang)
            parts = [_join(fact.question, fact.target_true, lang)]
            parts += [_join(p, fact.target_true, lang) for p in record.paraphrase_prompts.get(lang, [])]
            answers = record.neighborhood_answers.get(lang, [])
            for i, prompt in enumerate(record.neighborhood_prompts.get(lang, [])):
                parts.append(_join(prompt, answers[i] if i < len(answers) else None, lang))
            texts.append("\n".join(parts))
    return texts


STATEMENT_RECIPE = (
    "one text per (held-out record, language): edit question + true answer, each paraphrase + true "
    "answer, each neighbourhood prompt + its answer, newline-separated; counterfactual targets and "
    "multi-hop questions left out"
)


def zsre_training_items(held: HeldOut) -> list[dict[str, Any]]:
    """The held-out edits in EasyEdit's zsRE training layout (``ZsreDataset``), one per (record, language).

    Each edit's locality prompt is a neighbourhood prompt of the same record and language
    (``nq question:`` prefix, as ZsreDataset requires); edits without paraphrase or
    neighbourhood prompt are skipped.
    """
    items = []
    for record in held.records:
        for lang in record.langs:
            fact = record.fact(lang)
            paraphrases = record.paraphrase_prompts.get(lang, [])
            loc_prompts = record.neighborhood_prompts.get(lang, [])
            loc_answers = record.neighborhood_answers.get(lang, [])
            if not paraphrases or not loc_prompts or not loc_answers or not fact.target_true:
                continue
            items.append(
                {
                    "case_id": f"{record.example_id}:{lang}",
                    "src": fact.question,
                    "alt": fact.target_new,
                    "answers": [fact.target_true],
                    "rephrase": paraphrases[0],
                    "loc": "nq question: " + loc_prompts[0],
                    "loc_ans": loc_answers[0],
                    "subject": fact.subject,
                    "lang": lang,
                }
            )
    return items
