"""Report sections on how prompts reach the model: the unedited model under each prompt format, and
what in-context editing (IKE) costs in context and time.

* :func:`prompt_formats`: shown when the rows hold the unedited model under more than one
  ``prompt_format`` (rows without the field were made before it existed: bare). Per format, the
  record means (over all evaluation languages) of ``true_acc``, ``NS`` and ``MQ`` with bootstrap
  intervals, the **visibility** ``(true_acc + NS) / 2`` and the format the rule of
  benchmarks/mkeb/README.md ("Prompt format") picks: the simplest format within 1 percentage
  point of the highest visibility (:func:`choose_format`).
* :func:`in_context_costs`: shown when rows carry IKE's edit statistics: demonstrations, context
  length in tokens and seconds per record.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional, Sequence

from memla_plugin.prompt_format import PROMPT_FORMATS

from .markdown import csv_bytes, fmt_est, md_table, num, secs
from .report_data import ReportData
from .stats import bootstrap

#: what the rule reads and what the section also shows
RULE_METRICS = ("true_acc", "NS")
SHOWN_METRICS = ("true_acc", "NS", "MQ")
#: a format within this much of the best visibility loses to a simpler one (formats ordered simplest first)
MARGIN = 0.01


def row_format(row: dict[str, Any]) -> str:
    """The prompt format a row was made under (rows older than the setting: bare)."""
    return str(row.get("prompt_format") or "bare")


def choose_format(visibility: dict[str, Optional[float]], order: Sequence[str] = PROMPT_FORMATS) -> Optional[str]:
    """The simplest format (earliest in ``order``) whose visibility is within :data:`MARGIN` of the highest."""
    have = {f: v for f, v in visibility.items() if v is not None}
    if not have:
        return None
    best = max(have.values())
    return next(f for f in [*order, *sorted(set(have) - set(order))] if f in have and have[f] >= best - MARGIN)


def _lang_mean(scores: dict[str, dict[str, Any]], metric: str) -> Optional[float]:
    vals = [float(s[metric]) for s in scores.values() if s.get(metric) is not None]
    return sum(vals) / len(vals) if vals else None


def unedited_by_format(d: ReportData) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """format -> record id -> scores of the unedited model (the first unedited method with that record)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(dict)
    for m in d.methods:
        if d.kinds.get(m) != "unedited":
            continue
        for s in d.sources:
            for r in d.grouped.get((m, s), []):
                if r.get("status") == "ok" and r.get("scores"):
                    out[row_format(r)].setdefault(str(r["record_id"]), r["scores"])
    return dict(out)


def _format_values(records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, list[float]]:
    """metric (and "visibility") -> per-record values over all languages, in record order."""
    vals: dict[str, list[float]] = {m: [] for m in (*SHOWN_METRICS, "visibility")}
    for rid in sorted(records, key=lambda x: (not x.isdigit(), int(x) if x.isdigit() else 0, x)):
        means = {m: _lang_mean(records[rid], m) for m in SHOWN_METRICS}
        for m in SHOWN_METRICS:
            if means[m] is not None:
                vals[m].append(means[m])
        if all(means[m] is not None for m in RULE_METRICS):
            vals["visibility"].append(sum(means[m] for m in RULE_METRICS) / len(RULE_METRICS))
    return vals


def prompt_formats(d: ReportData, files: dict[str, bytes]) -> list[str]:
    """The unedited model under each prompt format, and the format the rule picks."""
    by_fmt = unedited_by_format(d)
    if len(by_fmt) < 2:
        return []
    order = [f for f in PROMPT_FORMATS if f in by_fmt] + sorted(set(by_fmt) - set(PROMPT_FORMATS))
    common = set.intersection(*(set(by_fmt[f]) for f in order))  # formats compared on the same records
    if not common:
        return []
    left_out = {f: len(by_fmt[f]) - len(common) for f in order if len(by_fmt[f]) > len(common)}
    by_fmt = {f: {rid: sc for rid, sc in by_fmt[f].items() if rid in common} for f in order}
    ests = {f: {m: bootstrap(v, label=f"format|{f}|{m}", seed=d.seed, n_boot=d.n_boot)
                for m, v in _format_values(by_fmt[f]).items()} for f in order}
    chosen = choose_format({f: ests[f]["visibility"].mean for f in order}, order)
    cols = [*SHOWN_METRICS, "visibility"]
    table = [[f, str(len(by_fmt[f])), *(fmt_est(ests[f][m]) for m in cols), "**chosen**" if f == chosen else ""]
             for f in order]
    files[f"{d.files_dir}/prompt_formats.csv"] = csv_bytes(
        ["prompt_format", "records", *(f"{m}_{x}" for m in cols for x in ("mean", "lo", "hi"))],
        [[f, len(by_fmt[f]), *(num(getattr(ests[f][m], x)) for m in cols for x in ("mean", "lo", "hi"))]
         for f in order])
    note = ("" if not left_out else " Only the records every format has are compared ("
            + ", ".join(f"{n} more under {f}" for f, n in left_out.items()) + " left out).")
    return [
        "## Prompt format", "",
        "The unedited model under each prompt format (`prompt_format`), each value the mean over records of "
        "the mean over all evaluation languages, % with 95% bootstrap intervals. `true_acc`: token accuracy of "
        "the pre-edit answer after the edit question; NS / MQ: token-set F1 of the greedy answer to the "
        "neighbourhood / multi-hop questions. Visibility = (true_acc + NS) / 2; the rule (fixed before these "
        f"runs, benchmarks/mkeb/README.md) picks the simplest format within {MARGIN * 100:g} point of the "
        "highest visibility (order: " + ", ".join(PROMPT_FORMATS) + ")." + note, "",
        md_table(["format", "records", "true_acc", "NS", "MQ", "visibility", "rule"], table), "",
    ]


def in_context_costs(d: ReportData, files: dict[str, bytes]) -> list[str]:
    """IKE's context length and time per record (rows whose edit statistics carry ``context_tokens``)."""
    table, csv_rows = [], []
    for m in d.methods:
        for s in d.sources:
            rows = [r for r in d.grouped.get((m, s), []) if (r.get("edit_stats") or {}).get("context_tokens")]
            if not rows:
                continue
            ctx = [int(r["edit_stats"]["context_tokens"]) for r in rows]
            k = sorted({int(r["edit_stats"].get("n_demos", 0)) for r in rows})

            def mean(key: str, rs: list[dict[str, Any]] = rows) -> float:
                return sum(float(r.get(key) or 0.0) for r in rs) / len(rs)

            total = mean("edit_s") + mean("eval_s")
            table.append([m, s, str(len(rows)), "/".join(map(str, k)), f"{sum(ctx) / len(ctx):.0f}",
                          f"{min(ctx)}–{max(ctx)}", secs(mean("edit_s")), secs(mean("eval_s")), secs(total)])
            csv_rows.append([m, s, len(rows), "/".join(map(str, k)), num(sum(ctx) / len(ctx), 1), min(ctx), max(ctx),
                             num(mean("edit_s")), num(mean("eval_s")), num(total)])
    if not table:
        return []
    files[f"{d.files_dir}/in_context_costs.csv"] = csv_bytes(
        ["method", "source", "rows", "demonstrations", "context_tokens_mean", "context_tokens_min",
         "context_tokens_max", "edit_s_mean", "eval_s_mean", "s_per_record"], csv_rows)
    return [
        "## In-context editing: context and time", "",
        "IKE changes no weight: its demonstrations and the new fact precede every evaluated question. Context: "
        "tokens of that prefix (before the prompt format is applied); edit: retrieval; eval: scoring all "
        "languages with the prefix; seconds per record, means over rows.", "",
        md_table(["method", "source", "rows", "demonstrations", "context tokens (mean)", "min–max", "edit s",
                  "eval s", "s / record"], table), "",
    ]


__all__ = ["MARGIN", "RULE_METRICS", "choose_format", "in_context_costs", "prompt_formats", "row_format",
           "unedited_by_format"]
