"""The report's pictures: what each one shows is decided here, how it is drawn in :mod:`.plots`.

Two sections, same contract as :mod:`.sections` (markdown lines back, PNG files into ``files``):

* :func:`at_a_glance`, right under the header: locality against cross-lingual edit success for the
  first edit language, one labelled point per editor, the unedited model as the reference;
* :func:`plots`, at the end: per edit language the editors side by side on every evaluation
  language (MEMLA's variants and presets in a figure of their own), then the heatmaps.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from .markdown import safe_name
from .report_data import ReportData
from .stats import MKEB_METRICS, Estimate, bootstrap, pct

Files = dict[str, bytes]

METRIC_TITLE = {
    "ES": "edit success", "PS": "paraphrase score", "NS": "neighbourhood score", "MQ": "multi-hop score",
    "rel_acc": "reliability (token acc.)", "gen_acc": "generalisation (token acc.)",
    "loc_acc": "locality (token acc.)", "port_acc": "portability (token acc.)",
}
#: The per-language panels: MKEB's metrics, then locality, so edit success is never read alone.
PANEL_METRICS = MKEB_METRICS + ("loc_acc",)
#: The paper's ablations of MEMLA (catalog names); any other ``memla_*`` method is an improved preset.
ABLATION = re.compile(r"^memla_(no_.+|scale.+)$")
GLANCE_X, GLANCE_Y = "loc_acc", "ES"


def method_groups(methods: Sequence[str], kinds: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(figure suffix, methods) per figure: MEMLA with the baselines, with its ablations, with its presets."""
    variants = [m for m in methods if kinds.get(m) == "memla" and m != "memla"]
    ablations = [m for m in variants if ABLATION.match(m)]
    presets = [m for m in variants if m not in ablations]
    head = ["memla"] if "memla" in methods else []
    baselines = [m for m in methods if kinds.get(m) not in ("unedited", "memla")]
    groups = [("baselines", head + baselines), ("ablations", head + ablations), ("presets", head + presets)]
    return [(name, ms) for name, ms in groups if len(ms) > len(head)]


def _cells(d: ReportData, method: str, source: str, metric: str) -> dict[str, Estimate]:
    """Per evaluation language: the mean over ``method``'s records with a bootstrap interval."""
    rows = [r for r in d.grouped.get((method, source), []) if r.get("status") != "skipped" and r.get("scores")]
    return {t: bootstrap(d.matrix_values(rows, t, metric), label=f"cell|{method}|{source}|{metric}|{t}",
                         seed=d.seed, n_boot=d.n_boot) for t in d.targets}


def _panels(d: ReportData, source: str, methods: Sequence[str]) -> list[Any]:
    from .plots import Panel

    out = []
    for x in PANEL_METRICS:
        if x not in d.metrics:
            continue
        ref = (d.matrix.get(("unedited", x)) or {}).get(source, {})
        out.append(Panel(f"{x}: {METRIC_TITLE[x]}", {m: _cells(d, m, source, x) for m in methods},
                         {m: d.ests[(m, source, x, "others")] for m in methods}, ref))
    return out


def glance_points(d: ReportData, source: str, methods: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`.plots.pareto_figure` points: loc_acc (others) against ES (others), per method with intervals."""
    points = []
    for m in methods:
        ex, ey = d.ests.get((m, source, GLANCE_X, "others")), d.ests.get((m, source, GLANCE_Y, "others"))
        if not ex or not ey or ex.mean is None or ey.mean is None:
            continue
        points.append({"method": m, "x": ex.mean, "x_lo": ex.lo, "x_hi": ex.hi, "y": ey.mean, "y_lo": ey.lo,
                       "y_hi": ey.hi, "curve": None, "is_reference": d.kinds.get(m) == "unedited"})
    return points


def _drawer(d: ReportData, files: Files, tmp: str) -> Callable[[str, Callable[[Path], Any]], str]:
    """``draw(name, plot)``: ``plot(path)`` writes the PNG, which goes into ``files``; returns its link."""
    def draw(name: str, plot: Callable[[Path], Any]) -> str:
        plot(Path(tmp) / name)
        files[f"{d.files_dir}/{name}"] = (Path(tmp) / name).read_bytes()
        return f"{d.files_dir}/{name}"
    return draw


def at_a_glance(d: ReportData, files: Files) -> list[str]:
    """The report's first picture: which editors keep the model's other answers while the edit carries over."""
    if not d.plots or not d.scored or not {GLANCE_X, GLANCE_Y} <= set(d.metrics):
        return []
    from . import plots as P

    groups = dict(method_groups(d.methods, d.kinds))
    shown = ([m for m in d.methods if d.kinds.get(m) == "unedited"] + groups.get("baselines", ["memla"])
             + groups.get("presets", ["memla"])[1:])
    source = next((s for s in d.sources if len(glance_points(d, s, [m for m in shown if d.has(m, s)])) > 1), None)
    if source is None:
        return []
    points = glance_points(d, source, [m for m in shown if d.has(m, source)])
    n = sorted({d.ests[(p["method"], source, GLANCE_Y, "others")].n for p in points})
    title = f"Edit language {source}: locality against cross-lingual edit success"
    with tempfile.TemporaryDirectory() as tmp:
        path = _drawer(d, files, tmp)("at_a_glance.png", lambda out: P.pareto_figure(points, out, title))
    ref = next((p for p in points if p["is_reference"]), None)
    left_out = (" MEMLA's ablations are left out here (they have a figure of their own under Plots)."
                if "ablations" in groups else "")
    rest = [s for s in d.sources if s != source]
    if rest:
        left_out += (f" For edit language{'s' if len(rest) > 1 else ''} {', '.join(rest)}, the same two measures "
                     f"are in the ES and loc_acc panels of the per-language figures under Plots.")
    ref_txt = (f" The unedited model (star, dashed lines) sits at loc_acc {pct(ref['x'])}, ES {pct(ref['y'])}."
               if ref else "")
    return ["## At a glance\n", f"![locality against cross-lingual edit success, edit language {source}]({path})\n",
            f"Edit language {source}, {n[0] if len(n) == 1 else f'{n[0]}–{n[-1]}'} records per "
            f"method. x: locality as loc_acc in the other evaluation languages (the share of neighbourhood answer "
            f"tokens still predicted as the unedited model predicts them); y: edit success (ES) in the other "
            f"evaluation languages; whiskers: 95% bootstrap intervals over records. Up and to the right is "
            f"better on both; an editor far to the left changed answers it was not asked to change.{ref_txt}"
            f"{left_out}\n"]


def plots(d: ReportData, files: Files) -> list[str]:
    """Per edit language the editors side by side on every language, then the heatmaps, then the CSV list."""
    if not d.plots or not d.scored:
        return []
    from . import plots as P

    fd, md = d.files_dir, ["## Plots\n"]
    with tempfile.TemporaryDirectory() as tmp:
        draw = _drawer(d, files, tmp)
        md.append("Per edit language, each editor on every evaluation language (bars: mean over records with 95% "
                  "bootstrap intervals; hatched: the edit language; black line: the unedited model; under each "
                  "group: the mean over the other languages with its interval):\n")
        for s in d.sources:
            for name, ms in method_groups(d.present.get(s, []), d.kinds):
                panels = _panels(d, s, ms)
                if panels:
                    what = {"baselines": "MEMLA and the baselines", "ablations": "MEMLA and its ablations",
                            "presets": "MEMLA and its improved presets"}[name]
                    title = f"Edit language {s}: {what}, per evaluation language"
                    path = draw(f"languages_{s}_{name}.png", lambda out: P.language_panels(
                        out, panels, ms, d.targets, s, title))
                    md.append(f"![{what}, edit language {s}]({path})\n")
        md.append("Source × target heatmaps (mean over records, %):\n")
        for m in d.methods:
            links = []
            for x in [x for x in MKEB_METRICS if x in d.metrics]:
                grid = d.matrix.get((m, x)) or {}
                if grid:
                    title = f"{m}: {x} ({METRIC_TITLE[x]})"
                    path = draw(f"heatmap_{safe_name(m)}_{x}.png", lambda out: P.heatmap(
                        out, grid, list(grid), d.targets, title))
                    links.append(f"[{x}]({path})")
            if links:
                md.append(f"- {m}: " + " · ".join(links))
        md.append("")
    extra = [f", `{name}`" for name in ("memory.csv", "memla_vs_best.csv", "variants_vs_memla.csv")
             if f"{fd}/{name}" in files]
    md.append(f"CSV tables: `{fd}/summary.csv` (means, intervals, deltas), `matrix.csv` (source × "
              f"target), `counts.csv`, `timing.csv`" + "".join(extra) + ".\n")
    return md


__all__ = ["ABLATION", "PANEL_METRICS", "at_a_glance", "glance_points", "method_groups", "plots"]
