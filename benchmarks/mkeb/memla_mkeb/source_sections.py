"""Report section comparing edit languages: the same facts, edited by one method from different languages.

Does an edit stated in German transfer as well as the same edit stated in English? The per-language
sections cannot say: each averages "others" over a different set of languages (the edit language is left
out), and the edit languages may cover different records. This section compares a method with itself on
the records all its edit languages have, scored in the evaluation languages none of them is ("untouched"
languages), plus success in the edit language itself; each edit language against a reference (en when
present, else the first), paired by record with a bootstrap interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .compare import paired_difference
from .markdown import csv_bytes, fmt_est, md_table, num
from .report_data import ReportData
from .stats import SAYS, Estimate, bootstrap, counts_in_means, interval_side

Files = dict[str, bytes]
#: (metric, view) columns: "home" the edit language itself, "untouched" the languages no edit was stated in
COLUMNS = (("ES", "home"), ("ES", "untouched"), ("PS", "untouched"), ("NS_cf", "untouched"))


@dataclass(frozen=True)
class SourceComparison:
    """One method edited from several languages, on shared records and untouched languages."""

    method: str
    sources: tuple[str, ...]
    reference: str
    records: int
    untouched: tuple[str, ...]
    means: dict[tuple[str, str, str], Estimate]  # (source, metric, view)
    diffs: dict[tuple[str, str, str], tuple[Estimate, bool]]  # (source, metric, view), minus the reference


def _values(rows: Sequence[dict[str, Any]], source: str, metric: str, view: str, untouched: Sequence[str],
            keep: set[str]) -> dict[str, float]:
    """{record id: value} over the successful rows of ``keep``: the edit language's score, or the mean over
    the untouched languages."""
    langs = [source] if view == "home" else untouched
    out: dict[str, float] = {}
    for row in rows:
        rid = str(row["record_id"])
        if rid not in keep or not counts_in_means(row):
            continue
        vals = [float(v) for v in ((row["scores"].get(t) or {}).get(metric) for t in langs) if v is not None]
        if vals:
            out[rid] = sum(vals) / len(vals)
    return out


def source_comparisons(d: ReportData) -> list[SourceComparison]:
    """Every edited method with successful rows in two or more edit languages, in the report's order."""
    out = []
    for m in d.methods:
        if d.kinds.get(m) == "unedited":
            continue  # its scores do not depend on the language an edit would have been stated in
        ok = {s: {str(r["record_id"]) for r in d.grouped.get((m, s), []) if counts_in_means(r)} for s in d.sources}
        sources = tuple(s for s in d.sources if ok[s])
        if len(sources) < 2:
            continue
        keep = set.intersection(*(ok[s] for s in sources))
        untouched = tuple(t for t in d.targets if t not in sources)
        reference = "en" if "en" in sources else sources[0]
        means, diffs = {}, {}
        for metric, view in COLUMNS:
            if view == "untouched" and not untouched:
                continue
            vals = {s: _values(d.grouped[(m, s)], s, metric, view, untouched, keep) for s in sources}
            for s in sources:
                label = f"edit languages|{m}|{s}|{metric}|{view}"
                means[(s, metric, view)] = bootstrap([vals[s][k] for k in sorted(vals[s])], label=label,
                                                     seed=d.seed, n_boot=d.n_boot)
                if s != reference:
                    diffs[(s, metric, view)] = paired_difference(vals[s], vals[reference], label=label + "|diff",
                                                                 seed=d.seed, n_boot=d.n_boot)
        out.append(SourceComparison(m, sources, reference, len(keep), untouched, means, diffs))
    return out


def _cell(e: Optional[tuple[Estimate, bool]]) -> str:
    return "–" if e is None else fmt_est(e[0], signed=True)


def edit_languages_compared(d: ReportData, files: Files) -> list[str]:
    """The section: one table per set of edit languages, one row per method and edit language."""
    comps = source_comparisons(d)
    if not comps:
        return []
    md = ["## Edit languages compared\n",
          "The same facts edited by one method from different languages. For each method edited from more than "
          "one language: the records every one of its edit languages has (successful edits), ES in the edit "
          "language itself, and ES, PS and NS_cf as the mean over the *untouched* languages, those no edit was "
          "stated in, so that no edit language is scored at home where another is not. Δ: minus the reference "
          "edit language (en when present, else the first) on the same records, 95% bootstrap interval.\n"]
    heads = [f"{x} {'edit lang' if v == 'home' else 'untouched'}" for x, v in COLUMNS]
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[SourceComparison]] = {}
    for c in comps:
        groups.setdefault((c.sources, c.untouched), []).append(c)
    csv_rows: list[list[Any]] = []
    for (sources, untouched), members in groups.items():
        md.append(f"Edited in {', '.join(sources)}; untouched languages: {' '.join(untouched) or 'none'}.\n")
        table = []
        for c in members:
            for s in c.sources:
                table.append([c.method, s, str(c.records)]
                             + [fmt_est(c.means[(s, x, v)]) if (s, x, v) in c.means else "–" for x, v in COLUMNS]
                             + [_cell(c.diffs.get((s, x, v))) if s != c.reference else "reference"
                                for x, v in COLUMNS])
                for x, v in COLUMNS:
                    e = c.means.get((s, x, v))
                    diff = c.diffs.get((s, x, v))
                    csv_rows.append([c.method, s, c.reference, x, v, " ".join(c.untouched), c.records,
                                     num(e.mean if e else None)]
                                    + ([num(diff[0].mean), num(diff[0].lo), num(diff[0].hi)] if diff else ["", "", ""]))
        md += [md_table(["method", "edit language", "records"] + heads + [f"Δ {h}" for h in heads], table), ""]
    files[f"{d.files_dir}/edit_languages.csv"] = csv_bytes(
        ["method", "source", "reference", "metric", "view", "untouched_langs", "records", "mean",
         "diff_mean", "diff_lo", "diff_hi"], csv_rows)
    return md


#: the (metric, view) pairs the Findings read: transfer and locality where no edit was stated
FINDINGS = (("ES", "untouched"), ("NS_cf", "untouched"))


def findings_paragraphs(d: ReportData) -> list[str]:
    """One Findings paragraph for the MEMLA methods edited from several languages: each edit language minus
    the reference on ES and NS_cf in the untouched languages (the baselines are in the section's table)."""
    comps = [c for c in source_comparisons(d) if d.kinds.get(c.method) == "memla"]
    if not comps:
        return []
    parts = ["**Edit languages compared** (a method against itself on the records all its edit languages have, "
             "in the languages none of them is; the table under \"Edit languages compared\"; paired by record, "
             "95% bootstrap intervals)."]
    for c in comps:
        clauses = []
        for s in c.sources:
            if s == c.reference:
                continue
            cells = []
            for metric, view in FINDINGS:
                diff = c.diffs.get((s, metric, view))
                if diff is not None:
                    cells.append(f"{metric} {fmt_est(diff[0], signed=True)} ({SAYS[interval_side(*diff)]})")
            if cells:
                clauses.append(f"edited in {s} minus {c.reference}: {', '.join(cells)}")
        if clauses:
            parts.append(f"`{c.method}` ({c.records} records), {'; '.join(clauses)}.")
    return [" ".join(parts)] if len(parts) > 1 else []


__all__ = ["COLUMNS", "SourceComparison", "edit_languages_compared", "findings_paragraphs", "source_comparisons"]
