"""Typed records for the MKEB schema (the layout of the official ``MLiKE_v2.json``).

A record holds one counterfactual edit expressed in up to 12 languages. Each language has
an :class:`EditFact` (templated prompt, subject, targets) plus the evaluation prompts:
paraphrases (PS), neighbourhood prompts with answers (NS) and multi-hop questions with the
post-edit answer (MQ).

BMIKE-53 questions sometimes inflect or transliterate the subject, so the subject cannot
always be cut out of the question. Such facts keep the full question and say
``has_subject_slot=False``: methods that need the subject position (ROME, MEMIT) can skip
or special-case them, methods that do not (MEMLA, FT, LoRA) use :attr:`EditFact.question`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memla_plugin.languages import MKEB_LANGS as LANGS
from memla_plugin.languages import NO_SPACE_LANGS, in_mkeb_order

__all__ = ["LANGS", "NO_SPACE_LANGS", "EditFact", "MKEBRecord", "fill_prompt"]


def fill_prompt(template: str, subject: str) -> str:
    """Put ``subject`` into the first ``{}`` of ``template``.

    ``str.format`` is avoided on purpose: questions may contain other braces.
    """
    return template.replace("{}", subject, 1)


@dataclass
class EditFact:
    """The edited fact in one language.

    ``prompt`` is the template with ``{}`` where the subject goes when ``has_subject_slot``;
    otherwise it is the full question (no ``{}``). ``target_true`` is ``None`` for data
    without the original answer (zsRE), which makes ES/PS unavailable.
    """

    prompt: str
    subject: str
    target_new: str
    target_true: str | None = None
    has_subject_slot: bool = True

    @property
    def question(self) -> str:
        """The fully filled question the model is asked."""
        if self.has_subject_slot:
            return fill_prompt(self.prompt, self.subject)
        return self.prompt

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt": self.prompt,
            "subject": self.subject,
            "target_new": self.target_new,
            "target_true": self.target_true,
        }
        if not self.has_subject_slot:
            out["has_subject_slot"] = False
        return out


@dataclass
class MKEBRecord:
    """One MKEB example: the edit and its evaluation prompts, keyed by language code."""

    example_id: int | str
    edit: dict[str, EditFact]
    paraphrase_prompts: dict[str, list[str]] = field(default_factory=dict)
    neighborhood_prompts: dict[str, list[str]] = field(default_factory=dict)
    neighborhood_answers: dict[str, list[str]] = field(default_factory=dict)
    multi_hop_questions: dict[str, list[str]] = field(default_factory=dict)
    multi_hop_new_answer: dict[str, str] = field(default_factory=dict)
    relation_description: str = ""

    @property
    def langs(self) -> tuple[str, ...]:
        """Languages this record has an edit for, in LANGS order (others after, sorted)."""
        return tuple(in_mkeb_order(self.edit))

    def fact(self, lang: str) -> EditFact:
        """The edit in ``lang``; raises MissingLanguageError naming the record."""
        try:
            return self.edit[lang]
        except KeyError:
            from memla_plugin.errors import MissingLanguageError

            raise MissingLanguageError(
                f"record {self.example_id}: no edit in language {lang!r} (has {', '.join(self.langs)})"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The MKEB JSON layout (``MLiKE_v2.json`` style; ``has_subject_slot`` only when false)."""
        out: dict[str, Any] = {
            "example_id": self.example_id,
            "relation_description": self.relation_description,
            "edit": {lang: self.edit[lang].to_json() for lang in self.langs},
            "paraphrase_prompts": self.paraphrase_prompts,
            "neighborhood_prompts": self.neighborhood_prompts,
            "neighborhood_answers": self.neighborhood_answers,
        }
        if self.multi_hop_questions:
            out["multi_hop_questions"] = self.multi_hop_questions
            out["multi_hop_new_answer"] = self.multi_hop_new_answer
        return out
