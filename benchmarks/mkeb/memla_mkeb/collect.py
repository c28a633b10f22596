"""Reading run directories for the report: every results row, merged over shards and sittings.

A key seen twice must carry the same scores (else it is an error), and rows of one method made
with different settings must not mix; the plans, environments, restore failures and unedited
timings of the same folders come along for the report's header and cost tables.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from memla_plugin.errors import MEMLAError

from . import store
from .protocol import row_protocol
from .settings import stable_hash

#: run settings that group edits (sequences, batches); they never change a single-edit row
GROUPING_SETTINGS = ("sequential", "batch")


class ReportError(MEMLAError, ValueError):
    """The run dirs cannot be reported on (missing, empty, conflicting duplicates...)."""


@dataclass
class Collected:
    run_dirs: list[Path]
    files: list[Path]
    rows: dict[str, dict[str, Any]]
    origin: dict[str, Path]
    duplicates: int = 0
    plans: list[dict[str, Any]] = field(default_factory=list)
    envs: list[dict[str, Any]] = field(default_factory=list)
    restore_failures: list[dict[str, Any]] = field(default_factory=list)
    unedited: list[dict[str, Any]] = field(default_factory=list)
    #: results, sequences or batches file -> index (into ``run_dirs``) of the run dir it was found under
    file_run_dir: dict[Path, int] = field(default_factory=dict)
    #: ``--common-records``: whether rows were limited to the records every method of a run dir has
    common_records: bool = False
    #: rows left out by ``--common-records``
    left_out: int = 0
    #: ``--first N``: only the first N records of each run's selection (None: all)
    first: Optional[int] = None
    #: rows left out by ``--first``
    left_out_first: int = 0
    #: sequence rows (``sequences*.jsonl``, sequential.n) by key
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: batch rows (``batches*.jsonl``, batch.size) by key
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the file each sequence or batch row was read from, by key
    grouped_origin: dict[str, Path] = field(default_factory=dict)


def _result_files(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        raise ReportError(f"run dir not found: {run_dir}")
    files = store.iter_files(run_dir, store.RESULTS_GLOB)
    if not files:
        files = sorted(p for p in run_dir.rglob(store.RESULTS_GLOB) if p.is_file())
    if not files:
        raise ReportError(f"no results*.jsonl in {run_dir} (or below it)")
    return files


def _comparable(row: dict[str, Any]) -> str:
    return json.dumps({"status": row.get("status"), "scores": row.get("scores")}, sort_keys=True)


def common_record_rows(
    pairs: Sequence[tuple[Path, dict[str, Any]]], run_dir_of: dict[Path, int]
) -> tuple[list[tuple[Path, dict[str, Any]]], int]:
    """Keep the rows of the records that every method of the same run dir has for the same edit language.

    A run that grows in steps (first 10 records, then 20, ...) holds more records for the methods
    it ran first whenever a sitting ended mid-step; this gives every method the same records.
    Returns (kept rows, number of rows left out).
    """
    have: dict[tuple[int, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path, row in pairs:
        have[(run_dir_of.get(path, -1), str(row.get("source")))][str(row.get("method"))].add(str(row.get("record_id")))
    common = {g: set.intersection(*by_method.values()) for g, by_method in have.items()}
    kept = [(p, r) for p, r in pairs
            if str(r.get("record_id")) in common[(run_dir_of.get(p, -1), str(r.get("source")))]]
    return kept, len(pairs) - len(kept)


def first_record_rows(
    pairs: Sequence[tuple[Path, dict[str, Any]]], first: int
) -> tuple[list[tuple[Path, dict[str, Any]]], int]:
    """Keep the rows of the first ``first`` records of each run's selection (``record_index`` below it).

    A comparison made once on the first N records stays reproducible after its run dirs have grown.
    Returns (kept rows, number of rows left out).
    """
    if first < 1:
        raise ReportError(f"--first must be at least 1 (got {first})")
    kept = []
    for path, row in pairs:
        index = row.get("record_index")
        if not isinstance(index, int):
            raise ReportError(f"{path}: row {row.get('key')!r} has no record_index, so --first cannot select it")
        if index < first:
            kept.append((path, row))
    return kept, len(pairs) - len(kept)


def _one_protocol(rows: dict[str, dict[str, Any]], origin: dict[str, Path]) -> None:
    """Rows of two evaluation protocols never meet in one report (their numbers are not comparable)."""
    where: dict[int, Path] = {}
    for key, row in rows.items():
        where.setdefault(row_protocol(row), origin[key])
    if len(where) > 1:
        listed = ", ".join(f"protocol {p} in {where[p]}" for p in sorted(where))
        raise ReportError(f"rows of different evaluation protocols ({listed}); report them separately")


def _add_grouped(into: dict[str, dict[str, Any]], run_dir: Path, pattern: str, scored: tuple[str, str],
                 what: str, origin: dict[str, Path]) -> None:
    """The sequence or batch rows of ``run_dir`` (``pattern``); a key seen twice must carry the same ``scored`` fields.

    ``origin`` gets the file of each key's first row."""
    def same(r: dict[str, Any]) -> str:
        return json.dumps([r.get(f) for f in scored], sort_keys=True)

    for path in store.iter_files(run_dir, pattern):
        for row in store.read_jsonl(path, ("key", "method", "source")):
            seen = into.get(row["key"])
            if seen is not None and same(seen) != same(row):
                raise ReportError(f"conflicting {what} results for {row['key']} in {path}; remove one of them")
            into.setdefault(row["key"], row)
            origin.setdefault(row["key"], path)


def single_edit_ids(plans: Sequence[dict[str, Any]]) -> dict[str, str]:
    """cfg_id -> the same method's id with the grouping settings left out, from the run dirs' plans.

    A sequential or batch run writes single-edit rows for the unedited model only, and those rows do
    not depend on how the edited methods group their edits; so the unedited rows of a run of sequences
    of 10, one of sequences of 50 and a single-edit run with otherwise equal settings are one setting.
    """
    out: dict[str, str] = {}
    for plan in plans:
        settings, ids = plan.get("settings") or {}, plan.get("method_ids") or {}
        base = {k: v for k, v in (settings.get("base") or {}).items() if k not in GROUPING_SETTINGS}
        for name, cfg_id in ids.items():
            method = (settings.get("methods") or {}).get(name)
            if method is not None:
                out[cfg_id] = stable_hash({"base": stable_hash(base), "method": method})
    return out


def collect(run_dirs: Sequence[Path], *, common_records: bool = False, first: Optional[int] = None) -> Collected:
    """Read and merge the rows of ``run_dirs`` (dedupe by key; conflicting duplicates are errors).

    ``first``: keep only the first N records of each run's selection (:func:`first_record_rows`), then
    ``common_records``: only the records every method of a run dir has (:func:`common_record_rows`).
    """
    files: list[Path] = []
    file_run_dir: dict[Path, int] = {}
    for i, d in enumerate(run_dirs):
        for f in _result_files(Path(d)):
            if f.resolve() not in {x.resolve() for x in files}:
                files.append(f)
                file_run_dir[f] = i
    rows: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    dup = 0
    pairs = list(store.rows_of(files))
    left_out = left_out_first = 0
    if first is not None:
        pairs, left_out_first = first_record_rows(pairs, first)
    if common_records:
        pairs, left_out = common_record_rows(pairs, file_run_dir)
    for path, row in pairs:
        key = row.get("key")
        if not key:
            raise ReportError(f"{path}: a row without 'key'")
        if key in rows:
            if _comparable(rows[key]) != _comparable(row):
                raise ReportError(
                    f"conflicting results for {key}: {origin[key]} and {path} hold different scores; "
                    f"remove one of them"
                )
            dup += 1
            continue
        rows[key] = row
        origin[key] = path
    out = Collected(list(map(Path, run_dirs)), files, rows, origin, dup, file_run_dir=file_run_dir,
                    common_records=common_records, left_out=left_out, first=first, left_out_first=left_out_first)
    kept_ids = {str(r.get("record_id")) for r in rows.values()}
    run_of_dir: dict[Path, int] = {}  # each folder holding results files, in order, with its run dir's index
    for f in files:
        run_of_dir.setdefault(f.parent, file_run_dir[f])
    for d in run_of_dir:
        for p in sorted(d.glob("plan*.json")):
            out.plans.append(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted(d.glob("env*.json")):
            out.envs.append(json.loads(p.read_text(encoding="utf-8")))
        out.restore_failures += store.read_jsonl(d / store.RESTORE_FAILURES)
        _add_grouped(out.sequences, d, store.SEQUENCES_GLOB, ("steps", "final"), "sequence", out.grouped_origin)
        _add_grouped(out.batches, d, store.BATCHES_GLOB, ("statuses", "scores"), "batch", out.grouped_origin)
        for p in store.iter_files(d, store.UNEDITED_GLOB):
            out.unedited += [{"record_id": r.get("record_id"), "eval_s": r.get("eval_s")} for r in store.read_jsonl(p)
                             if not (common_records or first) or str(r.get("record_id")) in kept_ids]
    for path in out.grouped_origin.values():  # a sequences or batches file belongs to its folder's run dir
        out.file_run_dir.setdefault(path, run_of_dir[path.parent])
    _one_protocol(rows, origin)
    # one method, one setting: rows of a method made with different configs must not mix (how a run
    # grouped its edits does not count: it never changes a single-edit row)
    neutral = single_edit_ids(out.plans)
    ids: dict[str, dict[str, Path]] = defaultdict(dict)
    for key, row in rows.items():
        cfg_id = str(row.get("cfg_id"))
        ids[row["method"]].setdefault(neutral.get(cfg_id, cfg_id), origin[key])
    for method, by_id in sorted(ids.items()):
        if len(by_id) > 1:
            where = ", ".join(f"{k} in {v}" for k, v in sorted(by_id.items()))
            raise ReportError(f"rows of method {method!r} come from different settings ({where}); report them separately")
    return out


__all__ = ["Collected", "GROUPING_SETTINGS", "ReportError", "collect", "common_record_rows", "first_record_rows",
           "single_edit_ids"]
