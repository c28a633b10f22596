"""EasyEdit-style dataset over MKEB records.

Each item is a request dict in the shape EasyEdit's ``BaseEditor.edit_requests`` consumes
(``prompt``, ``subject``, ``target_new``, ``ground_truth``, ``rephrase_prompt``, ``locality``,
``portability``) for the edit language, plus ``languages`` carrying every language's version
of the fact (MEMLA reads its identification languages from there; the harness evaluates in
all of them) and ``has_subject_slot`` (False when the subject is not literally in the prompt,
which ROME/MEMIT need).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from memla_plugin.errors import MissingLanguageError

from .loader import load_mkeb
from .schema import MKEBRecord


def request_from_record(record: MKEBRecord, edit_lang: str, langs: Sequence[str] | None = None) -> dict[str, Any]:
    """One EasyEdit request for editing ``record`` in ``edit_lang``."""
    fact = record.fact(edit_lang)
    langs = list(langs) if langs is not None else list(record.langs)
    if edit_lang not in langs:
        langs.insert(0, edit_lang)
    paraphrases = record.paraphrase_prompts.get(edit_lang, [])
    request: dict[str, Any] = {
        "case_id": record.example_id,
        "prompt": fact.question,
        "subject": fact.subject,
        "target_new": fact.target_new,
        "ground_truth": fact.target_true,
        "rephrase_prompt": paraphrases[0] if paraphrases else None,
        "locality": {},
        "portability": {},
        "edit_lang": edit_lang,
        "has_subject_slot": fact.has_subject_slot,
        "languages": {},
    }
    if record.neighborhood_prompts.get(edit_lang):
        request["locality"]["neighborhood"] = {
            "prompt": list(record.neighborhood_prompts[edit_lang]),
            "ground_truth": list(record.neighborhood_answers[edit_lang]),
        }
    questions = record.multi_hop_questions.get(edit_lang)
    if questions and record.multi_hop_new_answer.get(edit_lang):
        request["portability"]["multi_hop"] = {
            "prompt": list(questions),
            "ground_truth": [record.multi_hop_new_answer[edit_lang]] * len(questions),
        }
    for lang in langs:
        f = record.fact(lang)
        request["languages"][lang] = {
            "prompt": f.question,
            "template": f.prompt,
            "subject": f.subject,
            "has_subject_slot": f.has_subject_slot,
            "target_new": f.target_new,
            "target_true": f.target_true,
            "paraphrases": list(record.paraphrase_prompts.get(lang, [])),
            "neighborhood_prompts": list(record.neighborhood_prompts.get(lang, [])),
            "neighborhood_answers": list(record.neighborhood_answers.get(lang, [])),
            "multi_hop_questions": list(record.multi_hop_questions.get(lang, [])),
            "multi_hop_answer": record.multi_hop_new_answer.get(lang),
        }
    return request


class MKEBDataset:
    """MKEB records as EasyEdit requests for one edit language.

    ``path``: MKEB JSON (``None``/"default": the shipped CounterFact conversion) or a list of
    already loaded records; ``test_ids``: id file, "dev"/"test", or ids; ``langs``: languages
    to carry (default: all of the record's); ``size``: keep the first ``size`` records.
    """

    def __init__(
        self,
        path: str | Path | Sequence[MKEBRecord] | None = None,
        edit_lang: str = "en",
        test_ids: str | Path | Iterable[Any] | None = None,
        langs: Sequence[str] | None = None,
        size: int | None = None,
    ) -> None:
        if isinstance(path, (list, tuple)):
            records = list(path)
        else:
            records = load_mkeb(path, test_ids, langs=langs)
        if size is not None:
            records = records[:size]
        missing = [r.example_id for r in records if edit_lang not in r.edit]
        if missing:
            raise MissingLanguageError(
                f"edit language {edit_lang!r} missing in {len(missing)} record(s), e.g. {missing[0]}"
            )
        self.records = records
        self.edit_lang = edit_lang
        self.langs = list(langs) if langs is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return request_from_record(self.records[index], self.edit_lang, self.langs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def requests(self) -> list[dict[str, Any]]:
        """All requests as a list (what ``BaseEditor.edit_requests`` takes)."""
        return list(self)

    def to_hf_dataset(self) -> Any:
        """A ``datasets.Dataset`` with one row per request.

        ``case_id`` becomes a string (ids may be ints or strings) and empty ``locality`` /
        ``portability`` entries become ``None`` so every row shares one Arrow schema.
        """
        from datasets import Dataset

        rows = []
        for req in self:
            row = dict(req)
            row["case_id"] = str(row["case_id"])
            row["locality"] = row["locality"] or None
            row["portability"] = row["portability"] or None
            rows.append(row)
        return Dataset.from_list(rows)
