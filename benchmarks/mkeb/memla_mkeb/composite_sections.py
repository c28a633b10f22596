"""Report sections for the fair head-to-head: the composite score, locality, failures and the Pareto view.

Same contract as :mod:`.sections`: each section returns markdown lines and puts its CSV/PNG files
into ``files``. Every number comes from :class:`.ReportData` (composites, the locality margin's
eligible baselines, attempts), so the tables, the picture and the Findings paragraphs written here
(:func:`findings_paragraphs`) read the same objects.
"""
from __future__ import annotations

from typing import Any, Optional

from .compare import baselines_of, join_words
from .composite import LOCALITY_MARGIN, LOCALITY_METRIC, PARTS, SUCCESS_METRICS
from .figures import save_figure
from .grid import format_value
from .markdown import csv_bytes, fmt_est, md_table, num, safe_name
from .report_data import ReportData
from .stats import VIEW_LABEL, VIEWS, Estimate, interval_side, pct

Files = dict[str, bytes]

#: What the Findings read, stated once for the section and the Findings alike.
CHOICES = (f"Locality in these Findings is {LOCALITY_METRIC}, CounterFact's neighbourhood score (the share of "
           "neighbourhood prompts where P(target_true) still beats P(target_new), teacher forced): it compares "
           "probabilities as ES and PS do and does not depend on the model answering neighbourhood questions in "
           "the gold wording, which the generation-based NS does; loc_acc is shown beside it. ES and PS are "
           "the summed log-probability comparisons of the MKEB paper's code; the length-normalised ES_norm and "
           "PS_norm (mean log-probability per token) are in the CounterFact-style table as a second view.")
MARGIN_TEXT = (f"A baseline is compared with MEMLA on {', '.join(SUCCESS_METRICS)} only when its paired mean change "
               f"of {LOCALITY_METRIC} against the unedited model is above −{pct(LOCALITY_MARGIN)} points in both "
               "views; one that gives up more of the model's other knowledge wins ES/PS by overwriting, not by "
               "editing.")


def _grid_methods(d: ReportData) -> dict[str, list[tuple[int, str, Any]]]:
    """{base method: [(grid index, point's method name, knob value), ...]} from the rows' ``grid_point``."""
    out: dict[str, dict[int, tuple[int, str, Any]]] = {}
    for r in d.rows:
        gp = r.get("grid_point")
        if gp:
            out.setdefault(str(gp["method"]), {})[int(gp["index"])] = (int(gp["index"]), str(r["method"]), gp["value"])
    return {m: [pts[i] for i in sorted(pts)] for m, pts in sorted(out.items())}


def _xy(d: ReportData, method: str, source: str) -> Optional[tuple[Estimate, Estimate]]:
    ex, ey = d.ests.get((method, source, LOCALITY_METRIC, "others")), d.ests.get((method, source, "ES", "others"))
    if ex is None or ey is None or ex.mean is None or ey.mean is None:
        return None
    return ex, ey


def pareto_points(d: ReportData, source: str) -> list[dict[str, Any]]:
    """:func:`.plots.pareto_figure` points: NS_cf (others) against ES (others); a grid method is drawn as its curve.

    A grid method without rows of its own is placed at its composite-best grid point (the
    selection rule's choice on these rows).
    """
    grids = _grid_methods(d)
    in_grid = {name for pts in grids.values() for _, name, _ in pts}
    points = []
    for m in d.present.get(source, []):
        xy = _xy(d, m, source)
        if m in in_grid or xy is None:
            continue
        points.append(_point(m, xy, d.kinds.get(m) == "unedited"))
    for base, pts in grids.items():
        drawn = [(name, value, _xy(d, name, source)) for _, name, value in pts]
        drawn = [(name, value, xy) for name, value, xy in drawn if xy is not None]
        if not drawn:
            continue
        curve = [(xy[0].mean, xy[1].mean, format_value(value)) for _, value, xy in drawn]
        own = next((p for p in points if p["method"] == base), None)
        if own is None:
            best = max(drawn, key=lambda t: (d.composites.get((t[0], source, "others")) or Estimate(0, None, None, None)).mean or -1.0)
            own = _point(base, best[2], False)
            points.append(own)
        own["curve"] = curve
    return points


def _point(method: str, xy: tuple[Estimate, Estimate], reference: bool) -> dict[str, Any]:
    ex, ey = xy
    return {"method": method, "x": ex.mean, "x_lo": ex.lo, "x_hi": ex.hi, "y": ey.mean, "y_lo": ey.lo, "y_hi": ey.hi,
            "curve": None, "is_reference": reference}


def _pareto(d: ReportData, files: Files, source: str) -> list[str]:
    points = pareto_points(d, source)
    if not d.plots or len(points) < 2:
        return []
    from .plots import pareto_figure

    name = f"pareto_{safe_name(source)}.png"
    title = f"Edit language {source}: {LOCALITY_METRIC} against ES, other languages"
    link = save_figure(d, files, name, lambda out: pareto_figure(
        points, out, title, xlabel=f"locality: {LOCALITY_METRIC}, other languages (%)"))
    curves = [p["method"] for p in points if p["curve"]]
    grid_txt = (f" Thin lines: the tuning grid of {join_words(curves)}, each point labelled by its knob value."
                if curves else "")
    return [f"![{LOCALITY_METRIC} against ES, edit language {source}]({link})\n",
            f"x: {LOCALITY_METRIC} in the other evaluation languages; y: ES in the other evaluation languages; "
            f"whiskers: 95% bootstrap intervals over records; the star is the unedited model.{grid_txt}\n"]


def _source_table(d: ReportData, s: str, csv_rows: list[list[Any]]) -> list[str]:
    head = ["method", "attempted", "edited", "failed"] + [f"{p} others" for p in PARTS] + \
        [f"composite {VIEW_LABEL[v]}" for v in VIEWS] + [f"Δ{LOCALITY_METRIC} {VIEW_LABEL[v]}" for v in VIEWS] + \
        ["within margin"]
    elig, bl = d.eligible.get(s), baselines_of(d.present[s], d.kinds)
    table = []
    for m in d.present[s]:
        a = d.attempts(m, s)
        parts = [fmt_est(d.ests[(m, s, p, "others")]) if (m, s, p, "others") in d.ests else "–" for p in PARTS]
        comp = [fmt_est(d.composites[(m, s, v)]) for v in VIEWS]
        deltas = [fmt_est(d.deltas[k], signed=True) if (k := (m, s, LOCALITY_METRIC, v)) in d.deltas else "–"
                  for v in VIEWS]
        margin = "–" if elig is None or m not in bl else ("yes" if m in elig else "no")
        table.append([m, str(a.attempted), str(a.edited), str(a.failed), *parts, *comp, *deltas, margin])
        for v in VIEWS:
            e = d.composites[(m, s, v)]
            csv_rows.append([s, m, v, a.attempted, a.edited, a.failed, e.n, num(e.mean), num(e.lo), num(e.hi), margin])
    return [md_table(head, table), ""]


def _best_by_view(d: ReportData, s: str):
    """Per view with a best baseline: (view, baseline, MEMLA − baseline, which side of 0 its interval lies)."""
    for v in VIEWS:
        got = d.composite_best.get((s, v))
        if got is not None:
            base, diff, ok = got
            yield v, base, diff, interval_side(diff, ok)


def _versus_best(d: ReportData, s: str) -> list[str]:
    rows = []
    for v, base, diff, side in _best_by_view(d, s):
        word = {1: "MEMLA higher", -1: "MEMLA lower", 0: "no clear difference", None: "–"}[side]
        rows.append([VIEW_LABEL[v], base, pct(d.composites[("memla", s, v)].mean), pct(d.composites[(base, s, v)].mean),
                     fmt_est(diff, signed=True), str(diff.n), word])
    if not rows:
        return []
    return ["MEMLA minus the best baseline by composite (the baseline with the highest composite; paired over the "
            "records both have, the composite recomputed on each bootstrap resample):\n",
            md_table(["view", "best baseline", "MEMLA", "baseline", "MEMLA − baseline [95% CI]", "pairs",
                      "interval says"], rows), ""]


def composite_and_locality(d: ReportData, files: Files) -> list[str]:
    """Per edit language: each method's composite with its parts and attempts, MEMLA against the best, the picture."""
    if not d.scored:
        return []
    md = ["## Composite score and locality\n",
          f"Composite: the harmonic mean of the means of {', '.join(PARTS)} over a method's successful edits (the "
          "CounterFact evaluation's \"Score\"); a method that writes target_new everywhere gets ES and PS near 100 and "
          f"{LOCALITY_METRIC} near 0, so its composite is near 0. Failed edits are counted and left out of every "
          f"mean. {MARGIN_TEXT}\n"]
    if LOCALITY_METRIC not in d.metrics:
        return md + [f"Not available for these rows: they carry no {LOCALITY_METRIC} (see \"Metrics the data does "
                     "not support\"), so there is neither a composite nor a locality margin, and the best baseline "
                     "on ES/PS is picked without regard to locality.\n"]
    csv_rows: list[list[Any]] = []
    for s in d.sources:
        md += [f"### Edit language {s}\n", *_source_table(d, s, csv_rows), *_versus_best(d, s), *_pareto(d, files, s)]
    files[f"{d.files_dir}/composite.csv"] = csv_bytes(
        ["source", "method", "view", "attempted", "edited", "failed", "n", "composite", "composite_lo",
         "composite_hi", "within_margin"], csv_rows)
    return md


def _failures(d: ReportData) -> str:
    failed = [f"{m} {a.failed} of {a.attempted} (edit language {s})" for s in d.sources for m in d.present.get(s, [])
              if (a := d.attempts(m, s)).failed]
    if not failed:
        return "**Failed edits.** None: every attempted edit ran."
    return (f"**Failed edits.** {join_words(failed)}. These rows are counted in the tables and left out of every "
            "mean; a method's figures rest on its successful edits only.")


#: How a composite difference's interval reads in words ("X is above Y"), by the side of 0 it lies on.
COMPOSITE_VERB = {1: "above", -1: "below", 0: "not distinguishable from", None: "(no interval) compared with"}


def _composite_words(d: ReportData, s: str) -> Optional[str]:
    said = []
    for v, base, diff, side in _best_by_view(d, s):
        verb = COMPOSITE_VERB[side]
        said.append(f"{VIEW_LABEL[v]}: MEMLA {pct(d.composites[('memla', s, v)].mean)} is {verb} {base} "
                    f"{pct(d.composites[(base, s, v)].mean)} ({pct(diff.mean, True)} [{pct(diff.lo, True)}, "
                    f"{pct(diff.hi, True)}], n = {diff.n})")
    if not said:
        return None
    elig = d.eligible.get(s)
    margin = ("" if elig is None else f" Baselines within the locality margin (compared on ES/PS below): "
              f"{', '.join(elig) if elig else 'none'}.")
    return f"**Composite, edit language {s}** (best baseline by composite): " + "; ".join(said) + "." + margin


def findings_paragraphs(d: ReportData) -> list[str]:
    """The Findings' paragraphs on the composite, locality and failures (placed before the per-metric comparisons)."""
    if not d.scored:
        return []
    out = [CHOICES if LOCALITY_METRIC in d.metrics else
           (f"**Locality.** These rows carry no {LOCALITY_METRIC} (they predate it), so no composite is computed and "
            "the best baseline on ES/PS below is picked without regard to locality; read the loc_acc changes "
            "beside every loss.")]
    if LOCALITY_METRIC in d.metrics:
        out[0] = "**What the Findings read.** " + out[0] + " " + MARGIN_TEXT
        out += [p for s in d.sources if (p := _composite_words(d, s))]
    out.append(_failures(d))
    return out


__all__ = ["CHOICES", "COMPOSITE_VERB", "MARGIN_TEXT", "composite_and_locality", "findings_paragraphs", "pareto_points"]
