"""Report section on what the edited model *says*: generation-based success beside ES/PS.

* :func:`generation`: per edit language and view (the edit language itself; the mean over the
  other languages), each method's ES and PS (probability comparisons) next to ``gen_ES`` /
  ``gen_PS`` (its bounded greedy answer names ``target_new``), ``gen_ES_old`` / ``gen_PS_old``
  (it still names ``target_true``) and ``gen_NS`` (neighbourhood answers unchanged from the
  unedited model's), each the mean over records with a 95% bootstrap interval. The metrics are
  defined in :mod:`memla_plugin.mkeb.generation`. Rows made before these metrics existed name
  none of them: such a method shows "not measured", and a report whose rows all predate them
  has no such section.
"""
from __future__ import annotations

from typing import Any, Optional

from memla_plugin.mkeb.metric_registry import GENERATION_METRICS, METRIC_REGISTRY

from .markdown import csv_bytes, fmt_est, md_table, num
from .report_data import ReportData
from .stats import VIEW_LABEL, VIEWS, Estimate, bootstrap, by_record, ordered_values

#: Columns of the tables: the probability comparisons, then what the model says.
COLUMNS = ("ES", "gen_ES", "gen_ES_old", "PS", "gen_PS", "gen_PS_old", "gen_NS")
NOT_MEASURED = "not measured"


def _names_metric(rows: list[dict[str, Any]], metric: str) -> bool:
    """Whether any scored row names ``metric`` (rows older than it do not)."""
    return any(metric in sc for r in rows for sc in (r.get("scores") or {}).values())


def _estimate(d: ReportData, method: str, source: str, metric: str, view: str) -> Optional[Estimate]:
    """The cell's estimate; ``None`` when the method's rows predate the metric."""
    rows = d.grouped.get((method, source), [])
    if not _names_metric(rows, metric):
        return None
    if (method, source, metric, view) in d.ests:  # ES/PS: the same numbers as the other sections
        return d.ests[(method, source, metric, view)]
    vals = by_record(rows, source, metric, view)
    return bootstrap(ordered_values(vals), label=f"gen|{method}|{source}|{metric}|{view}", seed=d.seed,
                     n_boot=d.n_boot)


def _settings(d: ReportData) -> str:
    """The answer length bound and prompt format the rows were scored with, as text."""
    seen = sorted({(int(g.get("max_new_tokens", 0)), str(g.get("prompt_format")))
                   for r in d.scored if isinstance(g := r.get("gen"), dict)})
    if not seen:
        return "settings not recorded in the rows"
    return "; ".join(f"at most {n} tokens, asked under the {fmt!r} prompt format" for n, fmt in seen)


def generation(d: ReportData, files: dict[str, bytes]) -> list[str]:
    """Generation-based success beside ES/PS, per edit language and view (absent when no row has it)."""
    if not any(_names_metric(d.scored, m) for m in GENERATION_METRICS):
        return []
    lines = [
        "## What the edited model says", "",
        "ES / PS compare P(target_new) with P(target_true); the `gen_*` columns read the model's own greedy "
        f"answer ({_settings(d)}; cut at the end of turn), compared after normalisation (case, spaces, "
        "punctuation; whole words, but a plain substring in zh/ja/th). `gen_ES` / `gen_PS`: the answer to the "
        "edit question / the paraphrases names the new object; `gen_ES_old` / `gen_PS_old`: it still names "
        "the old one (lower is better after an edit); `gen_NS`: the neighbourhood answers equal the unedited "
        "model's. Means over records, % with 95% bootstrap intervals; failed edits left out. "
        f"\"{NOT_MEASURED}\": the method's rows were made before these metrics.", "",
    ]
    csv_rows: list[list[Any]] = []
    for s in d.sources:
        for view in VIEWS:
            table = []
            for m in d.present.get(s, []):
                cells = []
                for x in COLUMNS:
                    e = _estimate(d, m, s, x, view)
                    cells.append(NOT_MEASURED if e is None else fmt_est(e))
                    if e is not None:
                        csv_rows.append([m, s, view, x, e.n, num(e.mean), num(e.lo), num(e.hi)])
                table.append([m, *cells])
            if not table:
                continue
            where = f"answers in {s}" if view == "e2e" else "answers in the other languages, mean over them"
            lines += [f"Edited in {s}; {where} ({VIEW_LABEL[view]}):", "",
                      md_table(["method", *COLUMNS], table), ""]
    files[f"{d.files_dir}/generation.csv"] = csv_bytes(
        ["method", "source", "view", "metric", "records", "mean", "lo", "hi"], csv_rows)
    lines += ["Metric definitions: " + "; ".join(f"`{x}` {METRIC_REGISTRY[x].title}" for x in GENERATION_METRICS)
              + ".", ""]
    return lines


__all__ = ["COLUMNS", "NOT_MEASURED", "generation"]
