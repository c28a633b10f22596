"""Load MKEB JSON files (the official ``MLiKE_v2.json`` list layout) and test-id lists.

The converted BMIKE-53 data shipped with the project use the same layout plus a
``<name>.meta.json`` sidecar (source, licence, which metrics the split cannot support).
"""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any, Iterable, Sequence

from memla_plugin.errors import DataValidationError
from memla_plugin.languages import in_mkeb_order

from .schema import EditFact, MKEBRecord
from .validate import collect_problems, raise_if_problems, text_of

PathLikeStr = str | PathLike

#: Shortcut names accepted wherever an id file is expected.
ID_SETS = {"dev": "dev_ids.txt", "test": "test_ids.txt", "train": "train_ids.txt"}
#: The shipped converted benchmark file.
DEFAULT_DATA = "counterfact_mkeb.json"


def shipped_data_dir() -> Path:
    """Folder of the shipped benchmark data (``benchmarks/mkeb/data`` / package ``memla_mkeb``)."""
    repo_copy = Path(__file__).resolve().parents[2] / "benchmarks" / "mkeb" / "data"
    if repo_copy.is_dir():
        return repo_copy
    try:  # installed (non-editable) package
        from importlib.resources import files

        return Path(str(files("memla_mkeb") / "data"))
    except Exception as exc:  # pragma: no cover - only without the data
        raise DataValidationError("shipped MKEB data not found (benchmarks/mkeb/data or package memla_mkeb)") from exc


def resolve_data_path(path: PathLikeStr | None) -> Path:
    """``None``/``"default"`` -> the shipped CounterFact conversion; anything else is a path."""
    if path is None or str(path) == "default":
        return shipped_data_dir() / DEFAULT_DATA
    return Path(path)


def read_test_ids(path: PathLikeStr) -> list[str]:
    """Ids from a file with one id per line; blank lines and ``#`` comments are ignored.

    ``"dev"``, ``"test"`` and ``"train"`` name the shipped id lists.
    """
    p = shipped_data_dir() / ID_SETS[str(path)] if str(path) in ID_SETS else Path(path)
    try:
        lines = read_utf8(p, f"test-id file {p}").splitlines()
    except OSError as exc:
        raise DataValidationError(f"test-id file {p}: cannot read ({exc.strerror or exc})") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def meta_path(path: PathLikeStr) -> Path:
    """Sidecar path: ``x.json`` -> ``x.meta.json``."""
    p = Path(path)
    return p.with_name(p.stem + ".meta.json")


def read_meta(path: PathLikeStr) -> dict[str, Any]:
    """The sidecar of a converted file (empty dict for files without one, e.g. the real MKEB)."""
    m = meta_path(resolve_data_path(path))
    if not m.is_file():
        return {}
    return json.loads(m.read_text(encoding="utf-8"))


def read_utf8(path: Path, label: str) -> str:
    """The text of ``path``; bytes that are not UTF-8 give one error naming the file and byte offset."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset {exc.start}: {exc.reason}); "
            f"save the file as UTF-8"
        ) from None


def check_prompt_lengths(records: Sequence[MKEBRecord], max_chars: int | None, label: str, setting: str) -> None:
    """Refuse a record with a prompt longer than ``max_chars`` characters (None: no limit).

    Every prompt of a record is batched whole into the model (attribution, training, scoring), so an
    oversized one would cost memory and time out of all proportion; the error names record, field,
    language and the ``setting`` that raises the limit.
    """
    if max_chars is None:
        return
    for rec in records:
        fields = [("edit.prompt", lang, [rec.fact(lang).question]) for lang in rec.edit]
        fields += [(name, lang, list(texts)) for name in ("paraphrase_prompts", "neighborhood_prompts",
                                                           "multi_hop_questions")
                   for lang, texts in getattr(rec, name).items()]
        for name, lang, texts in fields:
            for i, text in enumerate(texts):
                if len(text) > max_chars:
                    where = name if name == "edit.prompt" else f"{name}[{i}]"
                    raise DataValidationError(
                        f"{label}: record {rec.example_id}, {lang}, {where}: {len(text)} characters, over the "
                        f"limit of {max_chars} ({setting}); shorten it or raise {setting}")


def read_json_list(path: Path, label: str, *, records_key: bool = False) -> list[Any]:
    """The JSON list stored in ``path``; every failure is one DataValidationError opening with ``label``.

    ``records_key``: also accept ``{"records": [...]}`` (a wrapped MKEB file).
    """
    try:
        data = json.loads(read_utf8(path, label))
    except OSError as exc:
        raise DataValidationError(f"{label}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if records_key and isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise DataValidationError(f"{label}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _fact(raw: dict[str, Any]) -> EditFact:
    target_true = text_of(raw.get("target_true"))
    return EditFact(
        prompt=raw["prompt"],
        subject=raw["subject"],
        target_new=text_of(raw["target_new"]),
        target_true=target_true if target_true else None,
        has_subject_slot=bool(raw.get("has_subject_slot", True)),
    )


def record_from_json(raw: dict[str, Any], langs: Sequence[str] | None = None) -> MKEBRecord:
    """Build an MKEBRecord from a (validated) raw dict, keeping only ``langs`` if given."""
    keep = (lambda lang: lang in langs) if langs is not None else (lambda lang: True)

    def per_lang(name: str) -> dict[str, Any]:
        return {k: v for k, v in (raw.get(name) or {}).items() if keep(k)}

    return MKEBRecord(
        example_id=raw["example_id"],
        relation_description=raw.get("relation_description") or "",
        edit={lang: _fact(f) for lang, f in raw["edit"].items() if keep(lang)},
        paraphrase_prompts={k: list(v) for k, v in per_lang("paraphrase_prompts").items()},
        neighborhood_prompts={k: list(v) for k, v in per_lang("neighborhood_prompts").items()},
        neighborhood_answers={k: [text_of(a) for a in v] for k, v in per_lang("neighborhood_answers").items()},
        multi_hop_questions={k: list(v) for k, v in per_lang("multi_hop_questions").items()},
        multi_hop_new_answer={k: text_of(v) for k, v in per_lang("multi_hop_new_answer").items()},
    )


def _langs_in(raw_records: list[Any]) -> tuple[str, ...]:
    found: set[str] = set()
    for raw in raw_records:
        if isinstance(raw, dict) and isinstance(raw.get("edit"), dict):
            found.update(raw["edit"])
    return tuple(in_mkeb_order(found))


def load_mkeb(
    path: PathLikeStr | None,
    test_ids: PathLikeStr | Iterable[Any] | None = None,
    *,
    langs: Sequence[str] | None = None,
) -> list[MKEBRecord]:
    """Load and validate an MKEB JSON file; optionally keep only ``test_ids`` (in that order).

    ``path``: a file in the MKEB list layout (``None``/"default": the shipped CounterFact
    conversion). ``test_ids``: a file with one id per line, "dev"/"test" for the shipped lists,
    or an iterable of ids. ``langs``: languages every record must have (default: every
    language any record has). Raises DataValidationError naming record, language and field.
    """
    p = resolve_data_path(path)
    data = read_json_list(p, f"MKEB file {p}", records_key=True)

    if test_ids is not None:
        wanted = read_test_ids(test_ids) if isinstance(test_ids, (str, PathLike)) else [str(i) for i in test_ids]
        by_id = {str(r.get("example_id")): r for r in data if isinstance(r, dict)}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DataValidationError(f"MKEB file {p}: {len(missing)} test id(s) not in the data: {shown}")
        data = [by_id[i] for i in wanted]

    use_langs = tuple(langs) if langs is not None else _langs_in(data)
    raise_if_problems(collect_problems(data, use_langs), f"MKEB file {p}")
    return [record_from_json(raw, use_langs) for raw in data]
