"""Report sections for sequential editing and held-out perplexity.

Each appears only when some row carries what it shows (a sequences file, a ``perplexity``
field), so reports of runs without them, docs/RESULTS.md among them, keep their bytes.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

from .compare import baselines_of, join_words, paired_difference
from .figures import save_figure
from .markdown import csv_bytes, fmt_est, md_table, num, safe_name
from .report_data import ReportData, method_order
from .stats import interval_side, pct

Files = dict[str, bytes]
#: (metric, view) pairs of the retention table; "e2e": the edit language, "others": the mean over the rest
RETENTION = (("ES", "e2e"), ("ES", "others"), ("PS", "others"), ("NS_cf", "others"))
#: (metric, view) pairs of the forgetting comparison
FORGETTING = (("ES", "e2e"), ("ES", "others"))
#: what a forgetting interval says, by :func:`.stats.interval_side` (the subject's drop minus the other's)
FORGETS = {1: "forgets less", -1: "forgets more", 0: "no clear difference", None: "no interval"}


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def view_value(scores: Optional[dict[str, Any]], source: str, metric: str, view: str) -> Optional[float]:
    """``metric`` of one record's scores in the edit language (e2e) or averaged over the other languages."""
    if not scores:
        return None
    if view == "e2e":
        return (scores.get(source) or {}).get(metric)
    return _mean([sc.get(metric) for lang, sc in scores.items() if lang != source])


def retention_points(rows: Sequence[dict[str, Any]], metric: str, view: str) -> list[tuple[Optional[float], Optional[float]]]:
    """Per position i: (mean right after edit i, mean after all N edits) over the rows' successful edits."""
    n = max(r["n"] for r in rows)
    now: list[list[Optional[float]]] = [[] for _ in range(n)]
    after: list[list[Optional[float]]] = [[] for _ in range(n)]
    for r in rows:
        for i, step in enumerate(r["steps"]):
            if step["status"] == "ok":
                now[i].append(view_value(step["scores"], r["source"], metric, view))
                after[i].append(view_value(r["final"]["scores"][i], r["source"], metric, view))
    return [(_mean(a), _mean(b)) for a, b in zip(now, after)]


def block_means(pts: Sequence[tuple[Optional[float], Optional[float]]], size: int
                ) -> tuple[list[float], list[Optional[float]], list[Optional[float]]]:
    """Positions 1..N cut into runs of ``size`` consecutive edits: per run, its mean position and the means
    of its (right after, after all N) values, leaving out the missing ones (a failed edit)."""
    xs, now, after = [], [], []
    for start in range(0, len(pts), size):
        block = pts[start:start + size]
        xs.append(start + (len(block) + 1) / 2)
        now.append(_mean([a for a, _ in block]))
        after.append(_mean([b for _, b in block]))
    return xs, now, after


def drops(rows: Sequence[dict[str, Any]], metric: str, view: str) -> dict[str, float]:
    """Per record id: its score after all N edits minus its score right after its own edit; negative when
    later edits undid some of it. Successful edits only, and not a sequence's last edit (no edit came after
    it, so its drop is 0 by construction for every method)."""
    out: dict[str, float] = {}
    for r in rows:
        for i, (rid, step) in enumerate(zip(r["record_ids"][:-1], r["steps"])):
            if step["status"] != "ok":
                continue
            now = view_value(step["scores"], r["source"], metric, view)
            after = view_value(r["final"]["scores"][i], r["source"], metric, view)
            if now is not None and after is not None:
                out[str(rid)] = after - now
    return out


def forgetting_estimates(d: ReportData, by_method: dict[str, list[dict[str, Any]]], n: int,
                         source: str) -> list[tuple[str, str, str, str, Any, Optional[int]]]:
    """(subject, baseline, metric, view, Estimate, side) per MEMLA method (the paper's and each preset) and
    baseline: the subject's drop minus the baseline's, paired over the facts both edited; ``side`` as
    :func:`.stats.interval_side` (+1: the subject forgets less)."""
    methods = method_order(list(by_method), d.kinds)
    subjects = [m for m in methods if d.kinds.get(m) == "memla"]
    others = baselines_of(methods, d.kinds)
    drop = {(m, metric, view): drops(by_method[m], metric, view)
            for m in subjects + others for metric, view in FORGETTING}
    out = []
    for subject in subjects:
        for other in others:
            for metric, view in FORGETTING:
                e, ok = paired_difference(drop[(subject, metric, view)], drop[(other, metric, view)],
                                          label=f"forget|{n}|{source}|{subject}|{other}|{metric}|{view}",
                                          seed=d.seed, n_boot=d.n_boot)
                out.append((subject, other, metric, view, e, interval_side(e, ok)))
    return out


def forgetting(d: ReportData, by_method: dict[str, list[dict[str, Any]]], n: int, source: str) -> list[str]:
    """MEMLA's (and each preset's) drop minus each baseline's, paired over the facts both edited."""
    table: dict[tuple[str, str], list[str]] = {}
    for subject, other, _, _, e, side in forgetting_estimates(d, by_method, n, source):
        table.setdefault((subject, other), [subject, other])
        table[(subject, other)] += [str(e.n), fmt_est(e, signed=True), FORGETS[side] if e.n else "–"]
    if not table:
        return []
    head = ["method", "vs"]
    for metric, view in FORGETTING:
        where = "edit lang" if view == "e2e" else "others"
        head += [f"pairs ({metric} {where})", f"Δ drop {metric} {where} [95% CI]", "interval says"]
    return ["Forgetting, paired by fact: the drop of an edit (its score after all N minus right after it was "
            "applied) for MEMLA minus the same fact's drop for each baseline, with a 95% bootstrap interval over "
            "the facts both edited successfully, a sequence's last edit left out (nothing came after it). Above "
            "0: MEMLA's earlier edits lose less than the baseline's (\"forgets less\"); below 0: they lose more.\n",
            md_table(head, list(table.values())), ""]


def _after(rows: Sequence[dict[str, Any]], metric: str, view: str) -> Optional[float]:
    return _mean([b for _, b in retention_points(rows, metric, view)])


def findings_paragraphs(d: ReportData) -> list[str]:
    """One Findings paragraph per sequence length and edit language: where each MEMLA method forgets less
    or more than each baseline (the forgetting intervals), and the locality of the model holding all N edits."""
    out = []
    for (n, source), by_method in sorted(_groups(d).items()):
        methods = method_order(list(by_method), d.kinds)
        ests = forgetting_estimates(d, by_method, n, source)
        if not ests:
            continue
        k = sorted({len(rows) for rows in by_method.values()})
        parts = [f"**{n} edits in a row, edited in {source}** ({'/'.join(map(str, k))} sequence"
                 f"{'s' if k != [1] else ''} per method; the tables under \"Sequential retention\")."]
        for subject in [m for m in methods if d.kinds.get(m) == "memla"]:
            for metric, view in FORGETTING:
                where = "in the edit language" if view == "e2e" else "in the other languages"
                said: dict[str, list[str]] = {}
                for s_, other, m_, v_, e, side in ests:
                    if (s_, m_, v_) == (subject, metric, view) and e.n:
                        text = other if side == 0 or side is None else f"{other} ({fmt_est(e, signed=True)})"
                        said.setdefault(FORGETS[side], []).append(text)
                if not said:
                    continue
                words = [f"{verdict} than {join_words(said[verdict])}" if verdict.startswith("forgets")
                         else f"{verdict} against {join_words(said[verdict])}"
                         for verdict in FORGETS.values() if verdict in said]
                parts.append(f"`{subject}`, {metric} {where}: {'; '.join(words)}.")
        loc = [f"{m} {pct(_after(by_method[m], 'NS_cf', 'others'))}" for m in methods]
        ref, _ = unedited_rows(d, by_method, source)
        parts.append(f"NS_cf in the other languages after all {n}: {', '.join(loc)}"
                     + (f" (unedited model on these records: {pct(unedited_mean(ref, source, 'NS_cf', 'others'))})."
                        if ref else "."))
        out.append(" ".join(parts))
    return out


def _groups(d: ReportData) -> dict[tuple[int, str], dict[str, list[dict[str, Any]]]]:
    """(N, edit language) -> method -> its sequence rows."""
    out: dict[tuple[int, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for key in sorted(d.c.sequences):
        row = d.c.sequences[key]
        out[(int(row["n"]), str(row["source"]))][row["method"]].append(row)
    return out


def _figure(path: Path, curves: dict[str, dict[str, list[tuple[Optional[float], Optional[float]]]]],
            n: int, source: str) -> None:
    """Score of edit i after all N edits against i, one panel per method (small multiples on shared axes:
    one sequence makes every point 0 or 100, so methods drawn over each other would hide one another).
    Solid: after all N; dotted: right after edit i; one colour per view (edit language, other languages).
    Past 20 edits a point is the mean of consecutive edits (:func:`block_means`): 50 points that each
    jump between 0 and 100 show no trend."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from .plots import _figure as checked_figure

    methods = list(curves)
    size = -(-n // 10) if n > 20 else 1
    ncols = 2 if len(methods) == 4 else min(4, len(methods))  # four in one row would be too wide for its height
    nrows = -(-len(methods) // ncols)
    width = max(3.1 * ncols, 7.0)  # one or two panels: room for the title and the two-column legend
    with checked_figure(path, (width, 2.5 * nrows + 0.9), methods, nrows=nrows, ncols=ncols,
                        sharex=True, sharey=True) as (fig, grid):
        grid = np.array(grid, dtype=object).reshape(nrows, ncols)  # one panel comes back as a bare Axes
        axes = list(grid.flat)
        for ax, m in zip(axes, methods):
            for k, (metric, view) in enumerate(RETENTION[:2]):
                xs, now, after = block_means(curves[m][f"{metric}/{view}"], size)
                where = "edit language" if view == "e2e" else "other languages"
                ax.plot(xs, [100 * b if b is not None else float("nan") for b in after], "-o", color=f"C{k}",
                        markersize=3, label=f"{metric}, {where}: after all {n}")
                ax.plot(xs, [100 * a if a is not None else float("nan") for a in now], ":", color=f"C{k}",
                        label=f"{metric}, {where}: right after edit i")
            ax.set_title(m, fontsize=9)
            ax.set_ylim(-5, 105)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes[len(methods):]:
            ax.set_visible(False)
        for i, ax in enumerate(axes[:len(methods)]):
            if i + ncols >= len(methods):  # the lowest panel of its column
                ax.xaxis.set_tick_params(labelbottom=True)
                ax.set_xlabel("edit i of the sequence" if size == 1 else f"edit i of the sequence (means of {size})")
        for ax in grid[:, 0]:
            ax.set_ylabel("score of edit i (%)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.suptitle(f"Retention after {n} sequential edits, edited in {source}", fontsize=10)
        fig.tight_layout(rect=(0, 0.2 / nrows, 1, 1))


def unedited_rows(d: ReportData, by_method: dict[str, list[dict[str, Any]]],
                  source: str) -> tuple[list[dict[str, Any]], int]:
    """The unedited model's rows on the records of these sequences, and how many records the sequences hold."""
    ids = {str(rid) for rows in by_method.values() for r in rows for rid in r["record_ids"]}
    ref = [r for r in d.rows if d.kinds.get(r["method"]) == "unedited" and str(r["source"]) == source
           and str(r["record_id"]) in ids]
    return ref, len(ids)


def unedited_mean(rows: Sequence[dict[str, Any]], source: str, metric: str, view: str) -> Optional[float]:
    return _mean([view_value(r.get("scores"), source, metric, view) for r in rows])


def unedited_reference(d: ReportData, by_method: dict[str, list[dict[str, Any]]],
                       source: str) -> Optional[list[str]]:
    """A table row with the unedited model's scores on the records of these sequences (where "after N"
    would fall if every edit were undone), or None when the run dirs hold no unedited rows for them."""
    ref, n_ids = unedited_rows(d, by_method, source)
    if not ref:
        return None
    cells = [f"{ref[0]['method']} (no edit; {len(ref)} of the {n_ids} records)", "–", "–"]
    cells += [pct(unedited_mean(ref, source, metric, view)) for metric, view in RETENTION]
    return cells + ["–"]


def retention(d: ReportData, files: Files) -> list[str]:
    """Sequential retention: each edit right after it was applied and after the whole sequence."""
    groups = _groups(d)
    if not groups:
        return []
    md = ["## Sequential retention\n",
          "Runs with `sequential.n=N` apply N edits one after another without restoring (the records in order, "
          "N at a time), score each edit right after it was applied and every edit again after the last one, then "
          "restore and check the weights bit for bit. \"now\": the mean right after each edit; \"after N\": the mean "
          "of the same edits after all N; ES/PS of failed or skipped edits are left out. NS_cf (locality) is each "
          "record's neighbourhood, so \"after N\" shows the locality of the model holding all N edits. Means over "
          "edits, %. Where the run dirs hold the unedited model's rows for the sequences' records, a last line "
          "gives its scores on them: where \"after N\" would fall if the later edits had undone the earlier "
          "ones.\n"]
    csv_rows: list[list[Any]] = []
    for (n, source), by_method in sorted(groups.items()):
        methods = method_order(list(by_method), d.kinds)
        table, curves = [], {}
        for m in methods:
            rows = by_method[m]
            counts = [sum(r["counts"][k] for r in rows) for k in ("ok", "error", "skipped")]
            cells = [m, str(len(rows)), "/".join(map(str, counts))]
            curves[m] = {}
            for metric, view in RETENTION:
                pts = retention_points(rows, metric, view)
                curves[m][f"{metric}/{view}"] = pts
                now, after = _mean([a for a, _ in pts]), _mean([b for _, b in pts])
                cells.append(f"{pct(now)} → {pct(after)}")
                csv_rows += [[m, n, source, i + 1, metric, view, num(a), num(b)] for i, (a, b) in enumerate(pts)]
            cells.append(str(sum(bool(r["restore"].get("checked")) for r in rows)))
            table.append(cells)
        reference = unedited_reference(d, by_method, source)
        if reference is not None:
            table.append(reference)
        md += [f"### {n} edits in a row, edited in {source}\n",
               md_table(["method", "sequences", "edits ok/failed/skipped"]
                        + [f"{m} {'edit lang' if v == 'e2e' else 'others'} now → after N" for m, v in RETENTION]
                        + ["restore checks passed"], table), ""]
        md += forgetting(d, by_method, n, source)
        if d.plots:
            link = save_figure(d, files, f"retention_n{n}_{safe_name(source)}.png",
                               lambda out: _figure(out, curves, n, source))
            md += [f"![retention after {n} edits, edited in {source}]({link})\n"]
    files[f"{d.files_dir}/retention.csv"] = csv_bytes(
        ["method", "n", "source", "position", "metric", "view", "right_after", "after_all"], csv_rows)
    return md


def _ppl_rows(d: ReportData) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """(method, edit language, N (1: single edits)) -> the perplexity fields of its edited rows."""
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in list(d.rows) + [d.c.sequences[k] for k in sorted(d.c.sequences)]:
        ppl = row.get("perplexity")
        if ppl and ppl.get("after") and d.kinds.get(row["method"]) != "unedited":  # unedited: after = before
            out[(row["method"], str(row["source"]), int(row.get("n", 1)))].append(ppl)
    return out


def perplexity(d: ReportData, files: Files) -> list[str]:
    """Held-out perplexity before and after each edit (or sequence), per method."""
    groups = _ppl_rows(d)
    if not groups:
        return []
    order = {m: i for i, m in enumerate(method_order([k[0] for k in groups], d.kinds))}
    table, csv_rows = [], []
    for (m, source, n) in sorted(groups, key=lambda k: (k[2], k[1], order[k[0]])):
        items = groups[(m, source, n)]
        before = _mean([p["before"]["mean_ppl"] for p in items])
        after = _mean([p["after"]["mean_ppl"] for p in items])
        langs = sorted(items[0]["before"]["langs"], key=lambda x: d.targets.index(x) if x in d.targets else 99)
        change = {lang: _mean([p["after"]["langs"][lang]["ppl"] / p["before"]["langs"][lang]["ppl"] - 1
                               for p in items if p["before"]["langs"][lang]["tokens"]]) for lang in langs}
        worst = max((lang for lang in langs if change[lang] is not None), key=lambda x: abs(change[x]), default=None)
        rel = _mean([p["after"]["mean_ppl"] / p["before"]["mean_ppl"] - 1 for p in items])
        table.append([m, source, "single edits" if n == 1 else f"sequences of {n}", str(len(items)), num(before, 2),
                      num(after, 2), pct(rel, signed=True),
                      f"{worst} {pct(change[worst], signed=True)}" if worst else "–"])
        csv_rows += [[m, source, n, lang, num(change[lang])] for lang in langs]
    files[f"{d.files_dir}/perplexity.csv"] = csv_bytes(["method", "source", "n", "lang", "mean_relative_change"],
                                                       csv_rows)
    texts = next(iter(groups.values()))[0]["before"]["langs"]
    n_texts = sum(v["texts"] for v in texts.values())
    return ["## Held-out perplexity (downstream cost)\n",
            md_table(["method", "edit language", "setting", "edits", "perplexity before", "after", "change (%)",
                      "largest change (language, %)"], table), "",
            f"Perplexity of {n_texts} held-out sentences ({len(texts)} languages; each a neighbourhood question of a "
            "record no run evaluates, followed by its answer) under the unedited model and after each edit (for "
            "sequences: after all N edits). \"perplexity\" is the mean over languages of each language's "
            "token-weighted perplexity; \"change\" the mean over edits of after / before − 1, also per language in "
            "perplexity.csv. This stands in for the MEMLA paper's downstream-task evaluation, which cannot be run "
            f"offline here.{_before_spread(groups)}\n"]


def _before_spread(groups: dict[tuple[str, str, int], list[dict[str, Any]]]) -> str:
    """A sentence on how far the unedited perplexity differs between sittings ('' when it does not).

    Each sitting measures it again on the model as loaded and every row is set against its own sitting's
    value; on CPU two sittings can differ in the last digits, and the table's "before" column shows it.
    """
    values = sorted({p["before"]["mean_ppl"] for items in groups.values() for p in items})
    if len(values) < 2:
        return ""
    lo, hi = values[0], values[-1]
    return (" The unedited perplexity is measured again in every sitting, on the model as loaded, and each edit is "
            f"set against its own sitting's value; across these sittings it ranges from {lo:.4f} to {hi:.4f} "
            f"({100 * (hi / lo - 1):.4f}% apart), which is why \"perplexity before\" can differ in its last digits.")


__all__ = ["FORGETTING", "RETENTION", "block_means", "drops", "findings_paragraphs", "forgetting",
           "forgetting_estimates", "perplexity", "retention", "retention_points", "view_value"]
