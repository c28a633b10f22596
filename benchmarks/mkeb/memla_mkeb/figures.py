"""The report's pictures: what each one shows is decided here, how it is drawn in :mod:`.plots`.

Two sections, same contract as :mod:`.sections` (markdown lines back, PNG files into ``files``):

* :func:`at_a_glance`, right under the header: locality against cross-lingual edit success for the
  first edit language, one labelled point per editor, the unedited model as the reference;
* :func:`plots`, at the end: per edit language the editors side by side on every evaluation
  language (MEMLA's variants and presets in a figure of their own), then the heatmaps.
"""
from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .composite import LOCALITY_METRIC
from .markdown import safe_name
from .report_data import ReportData
from .stats import MKEB_METRICS, Estimate, bootstrap, by_record, ordered_values, pct

Files = dict[str, bytes]

METRIC_TITLE = {
    "ES": "edit success", "PS": "paraphrase score", "NS": "neighbourhood score", "MQ": "multi-hop score",
    "rel_acc": "reliability (token acc.)", "gen_acc": "generalisation (token acc.)",
    "loc_acc": "locality (token acc.)", "port_acc": "portability (token acc.)",
    "NS_cf": "locality (CounterFact neighbourhood comparison)",
}
#: The at-a-glance x axis: the composite's locality figure where every editor shown has it (rows of
#: the fair protocol), else loc_acc; with the words the caption uses for each.
LOCALITY_WORDS = {
    LOCALITY_METRIC: "the share of neighbourhood prompts where P(target_true) > P(target_new) after the edit",
    "loc_acc": "the share of neighbourhood answer tokens still predicted as the unedited model predicts them",
}
#: The per-language panels: MKEB's metrics, then locality, so edit success is never read alone.
PANEL_METRICS = MKEB_METRICS + tuple(x for x in LOCALITY_WORDS if x not in MKEB_METRICS)
#: The paper's ablations of MEMLA (catalog names); any other ``memla_*`` method is an improved preset.
ABLATION = re.compile(r"^memla_(no_.+|scale.+)$")
GLANCE_Y = "ES"


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
    """Per evaluation language: the mean over ``method``'s records with a bootstrap interval.

    The values are read by :func:`.stats.by_record` (the language's own score is its "edit→edit"
    value), so a bar averages exactly the rows the tables' means do.
    """
    rows = d.grouped.get((method, source), [])
    return {t: bootstrap(ordered_values(by_record(rows, t, metric, "e2e")), seed=d.seed, n_boot=d.n_boot,
                         label=f"cell|{method}|{source}|{metric}|{t}") for t in d.targets}


def _panels(d: ReportData, source: str, methods: Sequence[str]) -> list[Any]:
    from .plots import Panel

    out = []
    for x in PANEL_METRICS:
        if x not in d.metrics:
            continue
        ref = (d.matrix.get(("unedited", x)) or {}).get(source, {})
        out.append(Panel(f"{x}: {METRIC_TITLE.get(x, x)}", {m: _cells(d, m, source, x) for m in methods},
                         {m: d.ests[(m, source, x, "others")] for m in methods}, ref))
    return out


def glance_points(d: ReportData, source: str, methods: Sequence[str],
                  x_metric: str = "loc_acc") -> list[dict[str, Any]]:
    """:func:`.plots.pareto_figure` points: locality (others) against ES (others), per method with intervals."""
    points = []
    for m in methods:
        ex, ey = d.ests.get((m, source, x_metric, "others")), d.ests.get((m, source, GLANCE_Y, "others"))
        if not ex or not ey or ex.mean is None or ey.mean is None:
            continue
        points.append({"method": m, "x": ex.mean, "x_lo": ex.lo, "x_hi": ex.hi, "y": ey.mean, "y_lo": ey.lo,
                       "y_hi": ey.hi, "curve": None, "is_reference": d.kinds.get(m) == "unedited"})
    return points


def glance_presets(presets: Sequence[str]) -> list[str]:
    """The presets the at-a-glance picture shows: not a preset's own ablations (``memla_refined_no_locality``
    beside ``memla_refined``), which the presets figure under Plots holds."""
    return [m for m in presets if not any(m.startswith(f"{p}_") for p in presets if p != m)]


def glance_choice(d: ReportData) -> Optional[tuple[str, str, list[dict[str, Any]]]]:
    """(edit language, locality figure, points) of the at-a-glance picture, or None when nothing to draw.

    The first edit language (MKEB's order) with at least two editors; the first locality figure of
    :data:`LOCALITY_WORDS` that every editor shown there has, so one picture never mixes two.
    """
    groups = dict(method_groups(d.methods, d.kinds))
    shown = ([m for m in d.methods if d.kinds.get(m) == "unedited"] + groups.get("baselines", ["memla"])
             + glance_presets(groups.get("presets", ["memla"])[1:]))
    for s in d.sources:
        here = [m for m in shown if d.has(m, s)]
        for x in LOCALITY_WORDS:
            points = glance_points(d, s, here, x)
            # every editor with an ES estimate has this locality figure too (ES against itself: all of them)
            if len(points) > 1 and len(points) == len(glance_points(d, s, here, GLANCE_Y)):
                return s, x, points
    return None


def _records(d: ReportData, source: str, methods: Sequence[str]) -> str:
    """How many records the methods' means rest on ("60", or "28–30" when they differ)."""
    x = next((x for x in PANEL_METRICS if x in d.metrics), d.metrics[0] if d.metrics else "")
    n = sorted({e.n for m in methods for e in [d.ests.get((m, source, x, "e2e"))] if e and e.n})
    return "0" if not n else str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"


def save_figure(d: ReportData, files: Files, name: str, plot: Callable[[Path], Any]) -> str:
    """``plot(path)`` writes the PNG ``name`` (in a scratch folder), which goes into ``files`` under the
    report's files folder; returns the link the markdown uses."""
    with tempfile.TemporaryDirectory() as tmp:
        plot(Path(tmp) / name)
        files[f"{d.files_dir}/{name}"] = (Path(tmp) / name).read_bytes()
    return f"{d.files_dir}/{name}"


def at_a_glance(d: ReportData, files: Files) -> list[str]:
    """The report's first picture: which editors keep the model's other answers while the edit carries over."""
    choice = glance_choice(d) if d.plots and d.scored else None
    if choice is None:
        return []
    from . import plots as P

    source, x, points = choice
    title = f"Edit language {source}: locality against cross-lingual edit success"
    path = save_figure(d, files, "at_a_glance.png", lambda out: P.pareto_figure(
        points, out, title, xlabel=f"locality: {x}, other languages (%)"))
    ref = next((p for p in points if p["is_reference"]), None)
    notes = (f" The unedited model (star, dashed lines) sits at {x} {pct(ref['x'])}, ES {pct(ref['y'])}."
             if ref else "")
    groups = dict(method_groups(d.methods, d.kinds))
    presets = groups.get("presets", ["memla"])[1:]
    left = (["MEMLA's ablations"] if "ablations" in groups else []) + (
        ["the presets' own ablations"] if len(glance_presets(presets)) < len(presets) else [])
    if left:
        notes += (f" {' and '.join(left)} are left out here (they have "
                  f"{'figures' if len(left) > 1 else 'a figure'} of their own under Plots).")
    rest = [s for s in d.sources if s != source]
    if rest:
        notes += (f" For edit language{'s' if len(rest) > 1 else ''} {', '.join(rest)}, the same two measures "
                  f"are in the ES and {x} panels of the per-language figures under Plots.")
    return ["## At a glance\n", f"![locality against cross-lingual edit success, edit language {source}]({path})\n",
            f"Edit language {source}, {_records(d, source, [p['method'] for p in points])} records per "
            f"method. x: locality as {x} in the other evaluation languages ({LOCALITY_WORDS[x]}); y: edit "
            f"success (ES) in the other evaluation languages; whiskers: 95% bootstrap intervals over records. "
            f"Up and to the right is better on both; an editor far to the left changed answers it was not "
            f"asked to change.{notes}\n"]


def plots(d: ReportData, files: Files) -> list[str]:
    """Per edit language the editors side by side on every language, then the heatmaps, then the CSV list."""
    if not d.plots or not d.scored:
        return []
    from . import plots as P

    fd, md = d.files_dir, ["## Plots\n"]
    draw = functools.partial(save_figure, d, files)
    md.append("Per edit language, each editor on every evaluation language (bars: mean over records with 95% "
              "bootstrap intervals; hatched: the edit language; black line: the unedited model; under each "
              "group: the mean over the other languages with its interval):\n")
    for s in d.sources:
        for name, ms in method_groups(d.present.get(s, []), d.kinds):
            panels = _panels(d, s, ms)
            if panels:
                what = {"baselines": "MEMLA and the baselines", "ablations": "MEMLA and its ablations",
                        "presets": "MEMLA and its improved presets"}[name]
                title = (f"Edit language {s}: {what}, per evaluation language "
                         f"({_records(d, s, ms)} records per editor)")
                path = draw(f"languages_{s}_{name}.png", lambda out: P.language_panels(
                    out, panels, ms, d.targets, s, title))
                md.append(f"![{what}, edit language {s}]({path})\n")
    md.append("Source × target heatmaps (mean over records, %):\n")
    for m in d.methods:
        links = []
        for x in [x for x in MKEB_METRICS if x in d.metrics]:
            grid = d.matrix.get((m, x)) or {}
            if grid:
                title = f"{m}: {x} ({METRIC_TITLE.get(x, x)})"
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


__all__ = ["ABLATION", "LOCALITY_WORDS", "PANEL_METRICS", "at_a_glance", "glance_choice", "glance_points",
           "glance_presets",
           "method_groups", "plots", "save_figure"]
