"""Report figures (matplotlib, Agg backend): heatmaps, per-language panels and the at-a-glance view.

Every figure goes through :func:`_figure`, which draws under matplotlib's default style at a fixed
size and DPI, saves without the PNG "Software" text chunk (so the same inputs give the same bytes on
the same matplotlib), and before saving reads the figure back: its aspect ratio must lie within
:data:`ASPECT_BOUNDS` and every method it was given must appear in a legend, tick label or text.
A figure that fails either check raises :class:`.ReportError` (one line naming the file and
what is wrong) instead of being written, so no report carries one.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from .collect import ReportError
from .stats import Estimate

PNG_META = {"Software": None}
DPI = 100
#: Width / height of every figure lies within these bounds (1:3 to 3:1).
ASPECT_BOUNDS = (1 / 3, 3.0)


@dataclass(frozen=True)
class Drawn:
    """What a saved figure is: its pixel size and every text it shows (read back before saving)."""

    path: Path
    width_px: int
    height_px: int
    texts: frozenset[str]

    @property
    def aspect(self) -> float:
        return self.width_px / self.height_px


def figure_texts(fig: Any) -> frozenset[str]:
    """Every visible non-empty text of a figure: titles, axis and tick labels, legend entries, annotations."""
    import matplotlib.text

    return frozenset(t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible())


def check_figure(fig: Any, names: Sequence[str], where: str) -> tuple[int, int, frozenset[str]]:
    """Pixel size and texts of ``fig``; raises if its aspect is out of bounds or a name is not shown."""
    w, h = fig.get_size_inches()
    wpx, hpx = int(round(w * DPI)), int(round(h * DPI))
    lo, hi = ASPECT_BOUNDS
    if not lo <= wpx / hpx <= hi:
        raise ReportError(f"figure {where}: aspect {wpx}x{hpx} px outside {lo:.2f}..{hi:.2f} (width / height)")
    texts = figure_texts(fig)
    missing = [n for n in names if not any(n == t or n in t.split("\n") for t in texts)]
    if missing:
        raise ReportError(f"figure {where}: method(s) {', '.join(missing)} not named in the legend or labels")
    return wpx, hpx, texts


@contextmanager
def _figure(path: Path, size: tuple[float, float], names: Sequence[str] = (), *, nrows: int = 1, ncols: int = 1,
            **subplot_kw: Any) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes under matplotlib's default style, checked, laid out and saved on exit.

    The :class:`Drawn` record of the saved file is appended to the yielded figure as ``fig.drawn``.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig, ax = plt.subplots(nrows, ncols, figsize=size, squeeze=ncols * nrows == 1, **subplot_kw)
        try:
            yield fig, ax
            if not fig.get_layout_engine():
                fig.tight_layout()
            wpx, hpx, texts = check_figure(fig, names, str(path))
            fig.savefig(path, format="png", dpi=DPI, metadata=PNG_META)
            fig.drawn = Drawn(Path(path), wpx, hpx, texts)
        finally:
            plt.close(fig)


def heatmap(
    path: Path,
    matrix: Mapping[str, Mapping[str, Optional[float]]],
    sources: Sequence[str],
    targets: Sequence[str],
    title: str,
) -> Drawn:
    """``matrix[source][target]`` in [0, 1] as a colour grid with the values printed (x100)."""
    import numpy as np

    data = np.array([[np.nan if matrix[s].get(t) is None else float(matrix[s][t]) for t in targets] for s in sources])
    width = 0.6 * len(targets) + 1.8
    # no flatter than 2.8:1, so a single edit language is not a strip
    with _figure(path, (width, max(width / 2.8, 0.5 * len(sources) + 1.3))) as (fig, ax):
        im = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(targets)), labels=list(targets))
        ax.set_yticks(range(len(sources)), labels=list(sources))
        ax.set_xlabel("evaluation language")
        ax.set_ylabel("edit language")
        ax.set_title(title, fontsize=10)
        for i in range(len(sources)):
            for j in range(len(targets)):
                v = data[i, j]
                if not np.isnan(v):
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=9,
                            color="white" if v < 0.6 else "black")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    return fig.drawn


@dataclass(frozen=True)
class Panel:
    """One metric of :func:`language_panels`: per method and evaluation language a mean with its interval."""

    title: str
    cells: Mapping[str, Mapping[str, Estimate]]  # method -> evaluation language -> mean over records
    others: Mapping[str, Estimate]  # method -> mean over the languages other than the edit language
    reference: Mapping[str, Optional[float]]  # evaluation language -> the unedited model's mean


_SLOT = 0.15  # inches per bar: a two-letter language code at 8 pt fits under its bar
_GAP = 2  # empty slots between two methods


def language_panels(path: Path, panels: Sequence[Panel], methods: Sequence[str], targets: Sequence[str],
                    source: str, title: str) -> Drawn:
    """One panel per metric; in each, one group of bars per method, one bar per evaluation language.

    Each bar is the mean over records with its 95% interval; the edit language's bar is hatched;
    the unedited model's mean is a black line across each bar; under each group, the method's
    cross-lingual mean (the other languages) with its interval.
    """
    n_slots = len(methods) * len(targets) + _GAP * max(0, len(methods) - 1)
    width, height = max(7.0, n_slots * _SLOT + 1.3), 0.9 + 2.35 * len(panels)
    # many editors and few metrics (or the reverse): the panels grow, the figure stays within 2.8:1
    width, height = max(width, height / 2.8), max(height, width / 2.8)
    has_ref = any(v is not None for p in panels for v in p.reference.values())
    names = [*methods, "unedited"] if has_ref else list(methods)
    with _figure(path, (width, height), names, nrows=len(panels), ncols=1) as (fig, axes):
        axes = list(axes.ravel()) if len(panels) > 1 else [axes]
        for ax, panel in zip(axes, panels):
            _panel(ax, panel, methods, targets, source)
        handles = _legend_handles(source, has_ref)
        fig.suptitle(title, x=0.01, y=1 - 0.06 / height, ha="left", va="top", fontsize=12)
        # the legend on a line of its own under the title, so a long title never runs into it
        fig.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=9, frameon=False,
                   bbox_to_anchor=(0.005, 1 - 0.3 / height))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.42 / height))
    return fig.drawn


def _panel(ax: Any, panel: Panel, methods: Sequence[str], targets: Sequence[str], source: str) -> None:
    import matplotlib

    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    ticks, tick_labels, tops = [], [], [0.0]
    for g, m in enumerate(methods):
        x0 = g * (len(targets) + _GAP)
        xs = [x0 + i for i in range(len(targets))]
        ests = [panel.cells.get(m, {}).get(t) for t in targets]
        ys = [_pct(e.mean if e else None) for e in ests]
        color = cycle[g % len(cycle)]
        bars = ax.bar(xs, ys, 0.8, color=color, edgecolor=color, lw=0.6)
        for t, bar in zip(targets, bars):
            if t == source:
                bar.set_hatch("///")
                bar.set_edgecolor("black")
                bar.set_facecolor(matplotlib.colors.to_rgba(color, 0.55))
        lo = [y - _pct(e.lo) if e and e.lo is not None else 0.0 for y, e in zip(ys, ests)]
        hi = [_pct(e.hi) - y if e and e.hi is not None else 0.0 for y, e in zip(ys, ests)]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="0.25", elinewidth=0.8, capsize=1.5)
        ref = [_pct(panel.reference.get(t)) for t in targets]
        tops += [v for v in [*ys, *(y + h for y, h in zip(ys, hi)), *ref] if v == v]  # v == v: not NaN
        ax.hlines(ref, [x - 0.45 for x in xs], [x + 0.45 for x in xs], color="black", lw=1.6, zorder=4)
        ticks += xs
        tick_labels += list(targets)
        o = panel.others.get(m)
        summary = "others –" if not o or o.mean is None else (
            f"others {_pct(o.mean):.0f} [{_pct(o.lo):.0f}, {_pct(o.hi):.0f}]")
        ax.text(x0 + (len(targets) - 1) / 2, -0.2, f"{m}\n{summary}", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=10, color="black", linespacing=1.3)
    ax.set_xticks(ticks, labels=tick_labels, fontsize=8)
    ax.tick_params(axis="x", length=2, pad=2)
    ax.tick_params(axis="y", labelsize=9)
    ax.set_xlim(-1, ticks[-1] + 1 if ticks else 1)
    # the smallest of these scales that holds every bar, interval and reference: small scores stay visible
    top = next(c for c in (10, 20, 50, 100, max(tops)) if c >= max(tops) - 1e-9)
    ax.set_ylim(0, top)
    step = {10: 2, 20: 5, 50: 10, 100: 25}.get(top, top / 4)
    ax.set_yticks([step * k for k in range(int(round(top / step)) + 1)])
    ax.grid(True, axis="y", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    scale = "" if top == 100 else f"  (axis up to {top:g}%)"
    ax.set_title(panel.title + scale, loc="left", fontsize=11)
    ax.set_ylabel("%", fontsize=10)


def _legend_handles(source: str, has_ref: bool) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ref = [Line2D([], [], color="black", lw=1.6, label="unedited")] if has_ref else []
    return [Patch(facecolor="white", edgecolor="black", hatch="///", label=f"edit language ({source})"), *ref,
            Line2D([], [], color="0.25", lw=0.8, marker="_", ms=6, label="95% interval (bootstrap over records)")]


# ---------------------------------------------------------------------------------------------
# The at-a-glance view: locality against cross-lingual edit success, one labelled point per method
# ---------------------------------------------------------------------------------------------

_OFFSETS = ((8, 6), (8, -14), (-8, 6), (-8, -14), (0, 12), (0, -20), (14, 16), (14, -24), (-14, 16),
            (-14, -24), (24, 0), (-24, 0), (26, 24), (26, -32), (-26, 24), (-26, -32), (0, 30), (0, -38))


def _pct(v: Optional[float]) -> float:
    import math

    return math.nan if v is None else 100.0 * float(v)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
Label = tuple[float, float, str, dict]  # x, y (data), text, text style


def _place_labels(fig: Any, ax: Any, items: Sequence[Label], obstacles: Sequence[Box]) -> None:
    """Label each (x, y) point at the first offset whose text hits no label, marker, whisker or edge.

    ``obstacles``: data-coordinate boxes (the whiskers). Greedy and deterministic (same inputs, same
    placement); a label moved far from its point gets a thin leader line so it still reads as that
    point's.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    taken: list[Box] = []
    for x, y, _, _ in items:
        px, py = ax.transData.transform((x, y))
        taken.append((px - 6, py - 6, px + 6, py + 6))
    for x0, y0, x1, y1 in obstacles:
        (a0, b0), (a1, b1) = ax.transData.transform([(x0, y0), (x1, y1)])
        taken.append((min(a0, a1) - 1.5, min(b0, b1) - 1.5, max(a0, a1) + 1.5, max(b0, b1) + 1.5))

    def cost(b: Box) -> float:
        area = sum(max(0.0, min(b[2], t[2]) - max(b[0], t[0])) * max(0.0, min(b[3], t[3]) - max(b[1], t[1]))
                   for t in taken)
        out = (max(0.0, axbox.x0 - b[0]) + max(0.0, b[2] - axbox.x1) + max(0.0, axbox.y0 - b[1])
               + max(0.0, b[3] - axbox.y1))
        return area + 100.0 * out

    for x, y, text, style in items:
        best: Optional[tuple[float, float, float, str, Box]] = None
        for dx, dy in _OFFSETS:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="bottom", **style)
            bb = ann.get_window_extent(renderer)
            ann.remove()
            box = (bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1)
            c = cost(box)
            if best is None or c < best[0]:
                best = (c, dx, dy, ha, box)
            if c == 0:
                break
        assert best is not None
        _, dx, dy, ha, box = best
        arrow = {"arrowstyle": "-", "lw": 0.6, "color": "0.4"} if abs(dx) + abs(dy) > 24 else None
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="bottom",
                    arrowprops=arrow, **style)
        taken.append(box)


def _point(ax: Any, p: Mapping[str, Any], color: str, marker: str, size: float) -> list[Box]:
    """One method's marker with its two whiskers (a missing interval end: no whisker that side)."""
    import math

    x, y = _pct(p.get("x")), _pct(p.get("y"))
    xl, xh, yl, yh = (_pct(p.get(k)) for k in ("x_lo", "x_hi", "y_lo", "y_hi"))
    xl, xh = (x if math.isnan(xl) else xl), (x if math.isnan(xh) else xh)
    yl, yh = (y if math.isnan(yl) else yl), (y if math.isnan(yh) else yh)
    ax.errorbar([x], [y], xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt=marker, color=color, ms=size,
                elinewidth=1.0, capsize=3, zorder=3)
    return [(xl, y, xh, y), (x, yl, x, yh)]


def pareto_figure(points: Sequence[Mapping[str, Any]], path: Path, title: str, *,
                  xlabel: str = "locality, other languages (%)",
                  ylabel: str = "edit success, other languages (%)") -> Drawn:
    """Locality (x) against cross-lingual edit success (y), one labelled point per method.

    ``points``: dicts with ``method``, ``x``, ``x_lo``, ``x_hi``, ``y``, ``y_lo``, ``y_hi`` (fractions
    in [0, 1], drawn as %; an interval end may be None), ``curve`` (None, or ``[(x, y, label), ...]``:
    the method's points along a tuning knob, drawn as a thin line with each knob value labelled) and
    ``is_reference`` (the unedited model: a star with dashed guide lines, not a contender). Both axes
    read "higher is better", so the methods nearest the top-right corner trade off best.
    """
    import math

    import matplotlib

    with _figure(path, (8.0, 6.4), [str(p["method"]) for p in points]) as (fig, ax):
        cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        named: list[Label] = []  # method labels, placed before the knob labels
        knobs: list[Label] = []
        whiskers: list[Box] = []
        k = 0
        for p in points:
            x, y = _pct(p.get("x")), _pct(p.get("y"))
            if p.get("is_reference"):
                color, marker, size = "black", "*", 14.0
                for v, line in ((x, ax.axvline), (y, ax.axhline)):
                    if not math.isnan(v):
                        line(v, color="0.5", lw=0.8, ls="--", zorder=1)
            else:
                # past the colour cycle the marker changes, so no two methods look alike
                color, marker, size = cycle[k % len(cycle)], "osD^v"[(k // len(cycle)) % 5], 7.0
                k += 1
            curve = p.get("curve") or []
            if curve:
                cx, cy = [_pct(c[0]) for c in curve], [_pct(c[1]) for c in curve]
                ax.plot(cx, cy, color=color, lw=1.0, alpha=0.6, marker=".", ms=5, zorder=2)
                knobs += [(a, b, str(c[2]), {"fontsize": 8, "color": color}) for a, b, c in zip(cx, cy, curve)]
            whiskers += _point(ax, p, color, marker, size)
            named.append((x, y, str(p["method"]), {"fontsize": 11, "color": color, "fontweight": "bold"}))
        for axis, i, keys in ((ax.set_xlim, 0, ("x", "x_lo", "x_hi")), (ax.set_ylim, 1, ("y", "y_lo", "y_hi"))):
            axis(*_limits([_pct(p.get(k_)) for p in points for k_ in keys]
                          + [_pct(c[i]) for p in points for c in p.get("curve") or []]))
        ax.set_xlabel(xlabel + "  →  better", fontsize=11)
        ax.set_ylabel(ylabel + "  →  better", fontsize=11)
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=10)
        ax.grid(True, color="0.9", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
        undrawn = [lab[2] for lab in named if math.isnan(lab[0]) or math.isnan(lab[1])]
        if undrawn:  # named all the same, with the reason, rather than silently missing
            ax.text(0.01, 0.01, "\n".join(["no value to draw:", *undrawn]), transform=ax.transAxes, fontsize=9,
                    color="0.3", ha="left", va="bottom")
        fig.tight_layout()
        _place_labels(fig, ax, [lab for lab in named + knobs if not (math.isnan(lab[0]) or math.isnan(lab[1]))],
                      [w for w in whiskers if not any(math.isnan(v) for v in w)])
    return fig.drawn


def _limits(vals: Sequence[float]) -> tuple[float, float]:
    """Axis limits holding every value with room for labels, within [-5, 105] (values are %)."""
    import math

    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return (0.0, 100.0)
    lo, hi = min(vals), max(vals)
    pad = max(4.0, 0.12 * (hi - lo))
    return (max(-5.0, lo - pad), min(105.0, hi + pad))


__all__ = ["ASPECT_BOUNDS", "Drawn", "Panel", "check_figure", "figure_texts", "heatmap", "language_panels",
           "pareto_figure"]
