"""Report section for batch editing (``batch.size``): mean scores and edit time per fact, per method and batch size.

It appears only when a run dir holds batch rows (``batches*.jsonl``), so reports of runs without
them, docs/RESULTS.md among them, keep their bytes.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

from .compare import baselines_of, join_words, paired_difference
from .envinfo import torch_threads_of
from .figures import save_figure
from .markdown import csv_bytes, fmt_est, md_table, num, safe_name, secs
from .report_data import ReportData, method_order
from .seq_sections import view_value
from .stats import SAYS, interval_side, pct

Files = dict[str, bytes]
#: (metric, view) columns: "e2e" the edit language, "others" the mean over the other languages
COLUMNS = (("ES", "e2e"), ("ES", "others"), ("PS", "e2e"), ("PS", "others"), ("NS_cf", "e2e"), ("NS_cf", "others"))
#: (metric, view) panels of the batch-size plot: success in the edit language and across, and locality
PLOTTED = (("ES", "e2e"), ("ES", "others"), ("NS_cf", "others"))


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def batch_means(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over the successfully edited facts of ``rows`` (one method, batch size and source)."""
    counts = [sum(r["counts"][k] for r in rows) for k in ("ok", "error", "skipped")]
    ok = [(r["source"], sc) for r in rows for sc, st in zip(r["scores"], r["statuses"]) if st == "ok"]
    means = {f"{m}/{v}": _mean([view_value(sc, src, m, v) for src, sc in ok]) for m, v in COLUMNS}
    edited = sum(counts[:2])
    per_fact = sum(r.get("edit_s") or 0.0 for r in rows) / edited if edited else None
    cpu = [r["edit_cpu_s"] for r in rows if isinstance(r.get("edit_cpu_s"), (int, float))]
    cpu_per_fact = sum(cpu) / edited if edited and len(cpu) == len(rows) else None
    threads = sorted({t for t in (torch_threads_of(r.get("hardware") or "") for r in rows) if t is not None})
    attributed = [r["edit_stats"]["attribution_s"] for r in rows
                  if isinstance((r.get("edit_stats") or {}).get("attribution_s"), (int, float))]
    attribution = sum(attributed) / edited if edited and attributed else None
    return {"batches": len(rows), "counts": counts, "means": means, "edit_s_per_fact": per_fact,
            "edit_cpu_s_per_fact": cpu_per_fact, "attribution_s_per_fact": attribution,
            "threads": "/".join(map(str, threads)) or "–",
            "restore_checks": sum(bool(r["restore"].get("checked")) for r in rows)}


def _groups(d: ReportData) -> dict[str, dict[tuple[str, int], list[dict[str, Any]]]]:
    """edit language -> (method, batch size) -> its batch rows."""
    out: dict[str, dict[tuple[str, int], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for key in sorted(d.c.batches):
        row = d.c.batches[key]
        out[str(row["source"])][(row["method"], int(row["n"]))].append(row)
    return out


def _figure(path: Path, curves: dict[str, list[tuple[int, dict[str, Optional[float]]]]], source: str) -> None:
    """Mean ES (edit language, other languages) and NS_cf (other languages) against the batch size, one line
    per method."""
    from .plots import _figure as checked_figure

    methods = list(curves)
    sizes = sorted({size for pts in curves.values() for size, _ in pts})
    with checked_figure(path, (13.2, 4.6), methods, ncols=len(PLOTTED)) as (fig, grid):
        axes = grid[0]  # one row of panels
        for ax, (metric, view) in zip(axes, PLOTTED):
            for k, m in enumerate(methods):
                pts = [(size, means[f"{metric}/{view}"]) for size, means in curves[m]]
                ax.plot([x for x, _ in pts], [100 * y if y is not None else float("nan") for _, y in pts], "-o",
                        color=f"C{k % 10}", markersize=4, label=m)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(x) for x in sizes])
            ax.minorticks_off()
            where = f"edit language {source}" if view == "e2e" else "other languages"
            ax.set(xlabel="facts edited at once (batch size)", ylabel=f"{metric}, {where} (%)",
                   ylim=(-5, 105), title=f"{metric}, {where}" + ("" if view == "e2e" else f" (edited in {source})"))
        axes[0].legend(fontsize=8, loc="lower left")
        fig.suptitle("Batch editing: each fact scored on the model holding its whole batch", fontsize=10)


def batch_size(d: ReportData, files: Files) -> list[str]:
    """Batch editing: each fact of a batch scored on the model holding the whole batch."""
    groups = _groups(d)
    if not groups:
        return []
    md = ["## Batch editing\n",
          "Runs with `batch.size=B` edit B facts at once (the records in order, B at a time): MEMLA in one joint "
          "edit (one training over the facts' neurons, each fact through its own masked editors, one merge), MEMIT "
          "and every method EasyEdit's `batch_edit` accepts in one call with the list, ROME one fact after the other "
          "as a reference. Every fact is then scored on the model holding the whole batch, the weights are restored "
          "and checked bit for bit. Means over the facts edited without error, %; NS_cf is each record's "
          "neighbourhood (locality); edit s/fact is the batch's edit time (wall clock) over its facts, edit CPU "
          "s/fact its process CPU time summed over the torch threads the row ran with (compare that one where the "
          "thread counts differ). Of the edit time, MEMLA spends "
          "\"attribution s/fact\" finding each fact's neurons on the unedited model, which it skips for a fact "
          "its neuron cache already holds (`run.neuron_dir`): compare batch sizes on the edit time without it.\n"]
    csv_rows: list[list[Any]] = []
    for source, by_key in sorted(groups.items()):
        order = {m: i for i, m in enumerate(method_order(sorted({m for m, _ in by_key}), d.kinds))}
        table, curves = [], defaultdict(list)
        for method, size in sorted(by_key, key=lambda k: (order[k[0]], k[1])):
            s = batch_means(by_key[(method, size)])
            curves[method].append((size, s["means"]))
            table.append([method, str(size), str(s["batches"]), "/".join(map(str, s["counts"]))]
                         + [pct(s["means"][f"{m}/{v}"]) for m, v in COLUMNS]
                         + [secs(s["edit_s_per_fact"]), secs(s["edit_cpu_s_per_fact"]),
                            secs(s["attribution_s_per_fact"]), s["threads"], str(s["restore_checks"])])
            csv_rows.append([method, size, source, s["batches"], *s["counts"]]
                            + [num(s["means"][f"{m}/{v}"]) for m, v in COLUMNS]
                            + [num(s["edit_s_per_fact"]), num(s["edit_cpu_s_per_fact"]),
                               num(s["attribution_s_per_fact"]), s["threads"]])
        md += [f"### Edited in {source}\n",
               md_table(["method", "batch size", "batches", "facts ok/failed/skipped"]
                        + [f"{m} {'edit lang' if v == 'e2e' else 'others'}" for m, v in COLUMNS]
                        + ["edit s/fact", "edit CPU s/fact", "attribution s/fact", "torch threads",
                           "restore checks passed"], table), ""]
        if d.plots:
            link = save_figure(d, files, f"batch_{safe_name(source)}.png",
                               lambda out: _figure(out, dict(curves), source))
            md += [f"![ES in the edit language and the others, NS_cf in the others, against the batch size, "
                   f"edited in {source}]({link})\n"]
    files[f"{d.files_dir}/batch.csv"] = csv_bytes(
        ["method", "batch_size", "source", "batches", "facts_ok", "facts_failed", "facts_skipped"]
        + [f"{m}_{v}" for m, v in COLUMNS]
        + ["edit_s_per_fact", "edit_cpu_s_per_fact", "attribution_s_per_fact", "torch_threads"], csv_rows)
    return md


def fact_values(rows: Sequence[dict[str, Any]], metric: str, view: str) -> dict[str, float]:
    """Per record id: ``metric`` of the fact on the model holding its batch (facts edited without error)."""
    out: dict[str, float] = {}
    for r in rows:
        for rid, sc, st in zip(r["record_ids"], r["scores"], r["statuses"]):
            value = view_value(sc, r["source"], metric, view) if st == "ok" else None
            if value is not None:
                out[str(rid)] = value
    return out


def findings_paragraphs(d: ReportData) -> list[str]:
    """One Findings paragraph per edit language: each MEMLA method minus each batch-editing baseline on the
    same facts at every batch size, and each MEMLA method at its largest batch against its batch size 1."""
    out = []
    for source, by_key in sorted(_groups(d).items()):
        methods = method_order(sorted({m for m, _ in by_key}), d.kinds)
        subjects = [m for m in methods if d.kinds.get(m) == "memla"]
        others = baselines_of(methods, d.kinds)
        sizes = sorted({n for _, n in by_key})
        if not subjects:
            continue
        parts = [f"**Batch editing, edited in {source}** (batch sizes {join_words([str(n) for n in sizes])}; the "
                 f"table under \"Batch editing\"; differences paired by fact, 95% bootstrap intervals)."]

        def diff(a: tuple[str, int], b: tuple[str, int], metric: str, view: str) -> str:
            e, ok = paired_difference(fact_values(by_key[a], metric, view), fact_values(by_key[b], metric, view),
                                      label=f"batch|{source}|{a}|{b}|{metric}|{view}", seed=d.seed,
                                      n_boot=d.n_boot)
            return f"{metric} {fmt_est(e, signed=True)} ({SAYS[interval_side(e, ok)]}, {e.n} facts)"

        def cells(a: tuple[str, int], b: tuple[str, int]) -> str:
            home = "; ".join(diff(a, b, m, v) for m, v in PLOTTED if v == "e2e")
            away = "; ".join(diff(a, b, m, v) for m, v in PLOTTED if v == "others")
            return f"in the edit language {home}; in the other languages: {away}"

        for subject in subjects:
            for size in sizes:
                pairs = [o for o in others if (subject, size) in by_key and (o, size) in by_key]
                for other in pairs:
                    parts.append(f"Batch size {size}, `{subject}` minus `{other}`: "
                                 f"{cells((subject, size), (other, size))}.")
            own = [n for n in sizes if (subject, n) in by_key]
            if len(own) > 1 and own[0] == 1:
                parts.append(f"`{subject}` in batches of {own[-1]} minus one fact at a time: "
                             f"{cells((subject, own[-1]), (subject, 1))}.")
        out.append(" ".join(parts))
    return out


__all__ = ["COLUMNS", "batch_means", "batch_size", "fact_values", "findings_paragraphs"]
