"""The unedited model's results on each record: computed once, reused by every method.

Every report shows the unedited model beside the editors, and ``loc_acc`` compares an
edited model's neighbourhood outputs with the unedited model's. :class:`ReferenceCache`
keeps those results per record (optionally in a JSON file) so a benchmark run computes them
once per record, whatever the number of methods and source languages, even across processes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .metric_registry import METRICS
from .schema import MKEBRecord
from .scoring import Scores, ScoringOptions, run_scoring

__all__ = ["ReferenceCache", "UneditedReference", "unedited_reference", "unedited_references"]


@dataclass
class UneditedReference:
    """The unedited model's results on one record.

    ``scores`` are the unedited model's own scores (the reference row of every report);
    ``loc_tokens`` its teacher-forced argmax on each neighbourhood answer, against which an
    edited model's ``loc_acc`` is measured; ``gen_loc`` its bounded greedy answers to the
    neighbourhood prompts, against which ``gen_NS`` is measured (empty in references stored
    before that metric existed: ``gen_NS`` is then not measured).
    """

    example_id: Any
    scores: Scores
    loc_tokens: dict[str, list[list[int]]] = field(default_factory=dict)
    gen_loc: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"example_id": self.example_id, "scores": self.scores, "loc_tokens": self.loc_tokens,
                "gen_loc": self.gen_loc}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "UneditedReference":
        return cls(raw["example_id"], raw["scores"], raw.get("loc_tokens", {}), raw.get("gen_loc", {}))


def unedited_references(model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str] | None = None,
                        **options: Any) -> list[UneditedReference]:
    """The unedited model's scores and neighbourhood outputs for each record (``loc_acc`` = 1).

    ``options``: the fields of :class:`.scoring.ScoringOptions`; use the same
    ``prompt_template`` as for the edited model's :func:`.scoring.score_record`.
    """
    out = run_scoring(model, tok, records, langs, ScoringOptions(**options), own_reference=True)
    return [UneditedReference(rec.example_id, o.scores, o.loc_tokens, o.gen_loc) for rec, o in zip(records, out)]


def unedited_reference(model: Any, tok: Any, record: MKEBRecord, langs: Sequence[str] | None = None,
                       **options: Any) -> UneditedReference:
    """:func:`unedited_references` for one record."""
    return unedited_references(model, tok, [record], langs, **options)[0]


class ReferenceCache:
    """Unedited-model references keyed by record id and languages, optionally kept in a JSON file.

    ``model_key`` should name everything the outputs depend on (model, dtype, prompt
    template); a file written under another key is ignored.
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
        """The stored reference, or ``None`` when this record and language list has none.

        A reference stored before a metric was added to the registry lacks it and counts as
        missing, so it is computed again rather than reported as "not measured".
        """
        raw = self._data.get(self._key(example_id, langs))
        if not raw or any(set(METRICS) - set(s) for s in raw.get("scores", {}).values()):
            return None
        return UneditedReference.from_json(raw)

    def get_or_compute(self, model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str],
                       **options: Any) -> list[UneditedReference]:
        """References for ``records``, computing (in pooled batches) only the missing ones.

        ``options`` go to :func:`unedited_references` (device, batch_size, prompt_template, ...).
        """
        todo = [r for r in records if self.get(r.example_id, langs) is None]
        if todo:
            for ref in unedited_references(model, tok, todo, langs, **options):
                self._data[self._key(ref.example_id, langs)] = ref.to_json()
            self.save()
        return [self.get(r.example_id, langs) for r in records]  # type: ignore[misc]

    def save(self) -> None:
        """Write the cache to its file (nothing without a path)."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            payload = {"model_key": self.model_key, "records": self._data}
            self.path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
