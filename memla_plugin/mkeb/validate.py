"""Validation of MKEB JSON records.

All problems of a file are collected first and reported together, each naming the record id,
the language and the field, so a user can fix a converted or hand-made file in one pass.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from memla_plugin.errors import DataValidationError

from .schema import LANGS, MKEBRecord

#: How many problems the error message lists before summarising the rest.
MAX_LISTED = 25

_PER_LANG_LISTS = ("paraphrase_prompts", "neighborhood_prompts", "neighborhood_answers")


def text_of(value: Any) -> Any:
    """Unwrap CounterFact-style ``{"str": ...}`` targets; other values pass through."""
    if isinstance(value, dict) and "str" in value:
        return value["str"]
    return value


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _string_list_problem(where: str, lang: str, name: str, items: Any) -> list[str]:
    """A per-language list field must be present and hold non-empty strings."""
    if items is None:
        return [f"{where}, lang {lang!r}: language missing in field {name!r}"]
    if not isinstance(items, list) or not all(_is_text(x) for x in items):
        return [f"{where}, lang {lang!r}, field {name!r}: expected a list of non-empty strings"]
    return []


def _fact_problems(where: str, lang: str, fact: Any) -> list[str]:
    """Problems of one language's ``edit`` entry (prompt, subject, targets, subject slot)."""
    if fact is None:
        return [f"{where}, lang {lang!r}: language missing in field 'edit'"]
    if not isinstance(fact, dict):
        return [f"{where}, lang {lang!r}, field 'edit': not an object"]
    problems: list[str] = []
    for key in ("prompt", "subject", "target_new"):
        value = text_of(fact.get(key))
        if key not in fact:
            problems.append(f"{where}, lang {lang!r}: field 'edit.{key}' missing")
        elif not _is_text(value):
            what = "empty target" if key.startswith("target") else "empty or not a string"
            problems.append(f"{where}, lang {lang!r}, field 'edit.{key}': {what}")
    if "target_true" in fact and fact["target_true"] is not None and not _is_text(text_of(fact["target_true"])):
        problems.append(f"{where}, lang {lang!r}, field 'edit.target_true': empty target")
    prompt = fact.get("prompt")
    slot = fact.get("has_subject_slot", True)
    if isinstance(prompt, str) and slot and "{}" not in prompt:
        problems.append(
            f"{where}, lang {lang!r}, field 'edit.prompt': prompt has no '{{}}' subject slot "
            f"(set has_subject_slot=false if the subject is not in the question)"
        )
    if isinstance(prompt, str) and not slot and "{}" in prompt:
        problems.append(f"{where}, lang {lang!r}, field 'edit.prompt': has_subject_slot=false but prompt contains '{{}}'")
    return problems


def _list_field_problems(raw: dict[str, Any], where: str, langs: Sequence[str]) -> list[str]:
    """Paraphrase and neighbourhood lists in every language, one answer per neighbourhood prompt."""
    problems: list[str] = []
    for name in _PER_LANG_LISTS:
        block = raw.get(name)
        if not isinstance(block, dict):
            problems.append(f"{where}: field {name!r} missing or not an object")
            continue
        for lang in langs:
            problems += _string_list_problem(where, lang, name, block.get(lang))
    prompts, answers = raw.get("neighborhood_prompts"), raw.get("neighborhood_answers")
    if isinstance(prompts, dict) and isinstance(answers, dict):
        for lang in langs:
            p, a = prompts.get(lang), answers.get(lang)
            if isinstance(p, list) and isinstance(a, list) and len(p) != len(a):
                problems.append(
                    f"{where}, lang {lang!r}, field 'neighborhood_answers': {len(a)} answers for {len(p)} neighborhood prompts"
                )
    return problems


def _multi_hop_problems(raw: dict[str, Any], where: str, langs: Sequence[str]) -> list[str]:
    """Multi-hop fields are optional for a whole record, but if present they must be complete."""
    questions, new_answer = raw.get("multi_hop_questions"), raw.get("multi_hop_new_answer")
    if questions is None and new_answer is None:
        return []
    if not isinstance(questions, dict) or not isinstance(new_answer, dict):
        return [f"{where}: fields 'multi_hop_questions' and 'multi_hop_new_answer' must both be objects"]
    problems: list[str] = []
    for lang in langs:
        problems += _string_list_problem(where, lang, "multi_hop_questions", questions.get(lang))
        ans = text_of(new_answer.get(lang))
        if lang not in new_answer:
            problems.append(f"{where}, lang {lang!r}: language missing in field 'multi_hop_new_answer'")
        elif not _is_text(ans):
            problems.append(f"{where}, lang {lang!r}, field 'multi_hop_new_answer': empty target")
    return problems


def record_problems(raw: Any, index: int, langs: Sequence[str] = LANGS) -> list[str]:
    """Problems of one raw record (a dict from the JSON list); empty list when it is valid."""
    if not isinstance(raw, dict):
        return [f"record #{index}: expected an object, got {type(raw).__name__}"]
    rid = raw.get("example_id")
    where = f"record {rid}" if rid is not None else f"record #{index}"
    problems: list[str] = []
    if rid is None:
        problems.append(f"{where}: field 'example_id' missing")
    edit = raw.get("edit")
    if not isinstance(edit, dict):
        problems.append(f"{where}: field 'edit' missing or not an object")
        edit = {}
    for lang in langs:
        problems += _fact_problems(where, lang, edit.get(lang))
    return problems + _list_field_problems(raw, where, langs) + _multi_hop_problems(raw, where, langs)


def collect_problems(data: Iterable[Any], langs: Sequence[str] = LANGS) -> list[str]:
    """Problems of every record plus duplicate ids; accepts raw dicts or MKEBRecord objects."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        raw = item.to_json() if isinstance(item, MKEBRecord) else item
        problems.extend(record_problems(raw, index, langs))
        if isinstance(raw, dict) and raw.get("example_id") is not None:
            key = str(raw["example_id"])
            if key in seen:
                problems.append(f"record {key}: field 'example_id' duplicated (records #{seen[key]} and #{index})")
            seen.setdefault(key, index)
    return problems


def raise_if_problems(problems: list[str], source: str = "MKEB data") -> None:
    """Raise one DataValidationError listing the problems (first MAX_LISTED of them)."""
    if not problems:
        return
    listed = problems[:MAX_LISTED]
    more = len(problems) - len(listed)
    tail = f"\n  ... and {more} more" if more else ""
    raise DataValidationError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(listed) + tail)


def validate(data: Iterable[Any], langs: Sequence[str] = LANGS, *, source: str = "MKEB data") -> None:
    """Check MKEB records (raw dicts or MKEBRecord); raise DataValidationError naming id/lang/field."""
    raise_if_problems(collect_problems(data, langs), source)
