"""The multilingual edit request MEMLA works on, and its conversion to/from EasyEdit's dict.

EasyEdit hands an apply function one dict per edit (``prompt``, ``subject``, ``target_new``,
``ground_truth``, ``rephrase_prompt``, ``locality``, ``portability``). MEMLA needs the same fact
in several languages as well, so its requests carry ``edit_lang`` and ``languages`` =
``{lang: {prompt, subject, target_new, target_true, paraphrases, ...}}`` on top. Builders (the
MKEB dataset, the CLI, the EasyEdit demo) create a :class:`MultilingualRequest` and call
:meth:`MultilingualRequest.to_easyedit`; MEMLA parses what arrives with
:meth:`MultilingualRequest.from_easyedit`, so the dict shape is written down in one place.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import MissingLanguageError

#: keys of a language entry that MEMLA itself reads; any others ride along untouched
FACT_KEYS = ("prompt", "subject", "target_new", "target_true", "paraphrases")


def fill(prompt: str, subject: Optional[str]) -> str:
    """Requests normally carry filled prompts; a template with "{}" is filled with the subject."""
    if subject and "{}" in prompt:
        return prompt.replace("{}", subject)
    return prompt


def as_prompt_list(value: Any) -> list[str]:
    """None, one string or a list of strings -> the non-blank strings as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value if v is not None and str(v).strip()]


def _unwrap(target: Any) -> Any:
    return target.get("str", "") if isinstance(target, dict) else target  # EasyEdit's {"str": ...}


@dataclass
class LangFact:
    """One language's version of the fact: what attribution and scoring read of it."""

    prompt: str
    subject: str = ""
    target_new: str = ""
    target_true: str = ""
    paraphrases: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. template, neighbourhood prompts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LangFact":
        """A language entry of ``languages`` (missing fields become empty)."""
        return cls(
            prompt=str(data.get("prompt") or ""),
            subject=str(data.get("subject") or ""),
            target_new=str(data.get("target_new") or ""),
            target_true=str(data.get("target_true") or ""),
            paraphrases=as_prompt_list(data.get("paraphrases")),
            extra={k: v for k, v in data.items() if k not in FACT_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out = {"prompt": self.prompt, "subject": self.subject, "target_new": self.target_new,
               "target_true": self.target_true, "paraphrases": list(self.paraphrases)}
        out.update(self.extra)
        return out

    def attribution_prompts(self) -> list[str]:
        """The filled prompt followed by the filled paraphrases (attribution's inputs)."""
        return [fill(self.prompt, self.subject)] + [fill(p, self.subject) for p in self.paraphrases]


@dataclass
class MultilingualRequest:
    """One fact to edit in ``edit_lang``, with its versions in other languages.

    The edit-language fields (``prompt`` ... ``paraphrases``) are filled prompts; ``languages``
    holds every language entry the request carried (the edit language's included when present).
    ``case_id`` is None when the caller gave none (EasyEdit's ``edit()`` passes none).
    """

    edit_lang: str
    prompt: str
    target_new: str
    target_true: str
    subject: str = ""
    paraphrases: list[str] = field(default_factory=list)
    languages: dict[str, LangFact] = field(default_factory=dict)
    case_id: Any = None
    relation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys (locality, portability, ...)

    @property
    def label(self) -> str:
        """How errors and logs name this request."""
        return f"case {'?' if self.case_id is None else self.case_id}, {self.edit_lang}"

    # ------------------------------------------------------------------ EasyEdit dicts
    @classmethod
    def from_easyedit(cls, request: dict[str, Any]) -> "MultilingualRequest":
        """Parse an EasyEdit request: top-level keys first, else ``languages[edit_lang]``.

        A key present but empty stays empty (and fails later with a named error); a key
        absent at the top level is taken from the edit language's entry.
        """
        case_id = request.get("case_id")
        edit_lang = request.get("edit_lang") or "en"
        langs = request.get("languages") or {}
        own = langs.get(edit_lang) or {}

        def pick(top_key: str, lang_key: str) -> Any:
            value = request.get(top_key)
            return own.get(lang_key) if value is None else value

        subject = pick("subject", "subject") or ""
        prompt = pick("prompt", "prompt")
        target_new = _unwrap(pick("target_new", "target_new"))
        target_true = _unwrap(pick("ground_truth", "target_true"))
        for key, value in (("prompt", prompt), ("target_new", target_new), ("ground_truth", target_true)):
            if value is None:
                raise MissingLanguageError(
                    f"request case {'?' if case_id is None else case_id} ({edit_lang}) has no {key!r} "
                    f"(neither top-level nor in languages[{edit_lang!r}])"
                )
        paraphrases = as_prompt_list(own["paraphrases"] if "paraphrases" in own else request.get("rephrase_prompt"))
        used = {"case_id", "edit_lang", "languages", "subject", "prompt", "target_new", "ground_truth"}
        return cls(
            edit_lang=edit_lang,
            prompt=fill(str(prompt), subject),
            target_new=str(target_new),
            target_true=str(target_true),
            subject=str(subject),
            paraphrases=[fill(p, subject) for p in paraphrases],
            languages={lang: LangFact.from_dict(data or {}) for lang, data in langs.items()},
            case_id=case_id,
            relation=str(request.get("relation_name") or request.get("relation_description") or ""),
            extra={k: v for k, v in request.items() if k not in used},
        )

    def to_easyedit(self) -> dict[str, Any]:
        """The dict EasyEdit's apply functions (and ``edit_requests``) take."""
        out: dict[str, Any] = {
            "case_id": self.case_id,
            "prompt": self.prompt,
            "subject": self.subject,
            "target_new": self.target_new,
            "ground_truth": self.target_true,
            "rephrase_prompt": self.paraphrases[0] if self.paraphrases else None,
            "locality": {},
            "portability": {},
        }
        out.update(self.extra)
        out["edit_lang"] = self.edit_lang
        out["languages"] = {lang: fact.to_dict() for lang, fact in self.languages.items()}
        return out

    # ------------------------------------------------------------------ attribution inputs
    def attribution_inputs(self, lang: str) -> Optional[tuple[list[str], str]]:
        """(prompts, target_true) of ``lang``; None when the request lacks that language."""
        if lang == self.edit_lang:
            return [self.prompt] + self.paraphrases, self.target_true
        fact = self.languages.get(lang)
        if fact is None or not fact.prompt or not fact.target_true:
            return None
        return fact.attribution_prompts(), fact.target_true

    def content_id(self, lang: str, settings_key: str = "") -> Optional[str]:
        """A stable id of ``lang``'s attribution inputs, for caching when there is no case id.

        Two requests get the same id exactly when attribution would see the same prompts,
        subject and target in that language under the same settings.
        """
        inputs = self.attribution_inputs(lang)
        if inputs is None:
            return None
        prompts, target = inputs
        subject = self.subject if lang == self.edit_lang else self.languages[lang].subject
        blob = json.dumps([lang, prompts, subject, target, settings_key], ensure_ascii=False)
        return "content-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]
