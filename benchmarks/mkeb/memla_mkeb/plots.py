"""Report figures (matplotlib, Agg backend): heatmaps, per-language panels and the at-a-glance view.

Every figure goes through :func:`_figure`, which draws under matplotlib's default style at a fixed
size and DPI, saves without the PNG "Software" text chunk (so the same inputs give the same bytes on
the same matplotlib), and before saving reads the figure back: its aspect ratio must lie within
:data:`ASPECT_BOUNDS` and every method it was given must appear in a legend, tick label or text.
A figure that fails either check raises instead of being written, so no report carries one.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

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
    """Every non-empty text of a figure: titles, axis and tick labels, legend entries, annotations."""
    import matplotlib.text

    return frozenset(t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text())


def check_figure(fig: Any, names: Sequence[str], where: str) -> tuple[int, int, frozenset[str]]:
    """Pixel size and texts of ``fig``; raises if its aspect is out of bounds or a name is not shown."""
    w, h = fig.get_size_inches()
    wpx, hpx = int(round(w * DPI)), int(round(h * DPI))
    lo, hi = ASPECT_BOUNDS
    if not lo <= wpx / hpx <= hi:
        raise ValueError(f"{where}: aspect {wpx}x{hpx} px outside {lo:.2f}..{hi:.2f}")
    texts = figure_texts(fig)
    missing = [n for n in names if not any(n == t or n in t.split("\n") for t in texts)]
    if missing:
        raise ValueError(f"{where}: method(s) {', '.join(missing)} not named in the legend or labels")
    return wpx, hpx, texts


@contextmanager
def _figure(path: Path, size: tuple[float, float], names: Sequence[str] = (), *, nrows: int = 1, ncols: int = 1,
            check: bool = True, **subplot_kw: Any) -> Iterator[tuple[Any, Any]]:
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
            wpx, hpx, texts = check_figure(fig, names, str(path)) if check else (0, 0, figure_texts(fig))
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
    with _figure(path, (0.6 * len(targets) + 1.8, 0.5 * len(sources) + 1.3), check=False) as (fig, ax):
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
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.6 else "black")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    return fig.drawn


def language_bars(
    path: Path,
    values: Mapping[str, Mapping[str, Optional[float]]],
    methods: Sequence[str],
    targets: Sequence[str],
    title: str,
) -> None:
    """Grouped bars: one group per evaluation language, one bar per method (``values[method][lang]``)."""
    import numpy as np

    width = 0.8 / max(1, len(methods))
    x = np.arange(len(targets))
    with _figure(path, (max(6.0, 0.75 * len(targets) * max(1, len(methods)) / 3 + 3) + 1.4, 3.4),
                 check=False) as (fig, ax):
        for k, method in enumerate(methods):
            ys = [values[method].get(t) for t in targets]
            ys = [np.nan if y is None else 100 * float(y) for y in ys]
            ax.bar(x - 0.4 + width * (k + 0.5), ys, width, label=method)
        ax.set_xticks(x, labels=list(targets))
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


# ---------------------------------------------------------------------------------------------
# The at-a-glance view: locality against cross-lingual edit success, one labelled point per method
# ---------------------------------------------------------------------------------------------

_OFFSETS = ((8, 6), (8, -14), (-8, 6), (-8, -14), (0, 12), (0, -20), (14, 16), (14, -24), (-14, 16),
            (-14, -24), (24, 0), (-24, 0), (26, 24), (26, -32), (-26, 24), (-26, -32), (0, 30), (0, -38))


def _pct(v: Optional[float]) -> float:
    import math

    return math.nan if v is None else 100.0 * float(v)


def _place_labels(fig: Any, ax: Any, items: Sequence[tuple[float, float, str, dict]]) -> None:
    """Label each (x, y) point with the first offset whose text hits no earlier label, marker or edge.

    Greedy and deterministic (same inputs, same placement); a label moved far from its point gets a
    thin leader line so it still reads as that point's.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    taken = []
    for x, y, _, _ in items:
        px, py = ax.transData.transform((x, y))
        taken.append((px - 5, py - 5, px + 5, py + 5))

    def overlap(b: tuple[float, float, float, float]) -> float:
        area = 0.0
        for t in taken:
            w = min(b[2], t[2]) - max(b[0], t[0])
            h = min(b[3], t[3]) - max(b[1], t[1])
            area += max(0.0, w) * max(0.0, h)
        out = max(0.0, axbox.x0 - b[0]) + max(0.0, b[2] - axbox.x1) + max(0.0, axbox.y0 - b[1]) + max(0.0, b[3] - axbox.y1)
        return area + 100.0 * out

    for x, y, text, style in items:
        best = None
        for dx, dy in _OFFSETS:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="bottom", **style)
            bb = ann.get_window_extent(renderer)
            box = (bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1)
            cost = overlap(box)
            ann.remove()
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, box)
            if cost == 0:
                break
        assert best is not None
        _, dx, dy, ha, box = best
        arrow = {"arrowstyle": "-", "lw": 0.6, "color": "0.4"} if abs(dx) + abs(dy) > 24 else None
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="bottom",
                    arrowprops=arrow, **style)
        taken.append(box)


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

    names = [str(p["method"]) for p in points]
    with _figure(path, (8.0, 6.4), names) as (fig, ax):
        cycle = [c["color"] for c in __import__("matplotlib").rcParams["axes.prop_cycle"]]
        named: list[tuple[float, float, str, dict]] = []  # method labels, placed before knob labels
        labels: list[tuple[float, float, str, dict]] = []
        k = 0
        for p in points:
            x, y = _pct(p.get("x")), _pct(p.get("y"))
            if p.get("is_reference"):
                color, marker, size = "black", "*", 14
                if not math.isnan(x):
                    ax.axvline(x, color="0.5", lw=0.8, ls="--", zorder=1)
                if not math.isnan(y):
                    ax.axhline(y, color="0.5", lw=0.8, ls="--", zorder=1)
            else:
                # past the colour cycle, the marker changes so no two methods look alike
                color, marker, size = cycle[k % len(cycle)], "osD^v"[(k // len(cycle)) % 5], 7
                k += 1
            curve = p.get("curve") or []
            if curve:
                cx, cy = [_pct(c[0]) for c in curve], [_pct(c[1]) for c in curve]
                ax.plot(cx, cy, color=color, lw=1.0, alpha=0.6, marker=".", ms=5, zorder=2)
                labels += [(a, b, str(c[2]), {"fontsize": 8, "color": color}) for a, b, c in zip(cx, cy, curve)]
            xerr = [[x - _pct(p.get("x_lo", p.get("x")))], [_pct(p.get("x_hi", p.get("x"))) - x]]
            yerr = [[y - _pct(p.get("y_lo", p.get("y")))], [_pct(p.get("y_hi", p.get("y"))) - y]]
            xerr = [[0.0 if math.isnan(v[0]) else v[0]] for v in xerr]
            yerr = [[0.0 if math.isnan(v[0]) else v[0]] for v in yerr]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=marker, color=color, ms=size, elinewidth=1.0,
                        capsize=3, zorder=3)
            named.append((x, y, str(p["method"]), {"fontsize": 11, "color": color, "fontweight": "bold"}))
        ax.set_xlim(*_limits([_pct(p.get(k_)) for p in points for k_ in ("x", "x_lo", "x_hi")]
                             + [_pct(c[0]) for p in points for c in p.get("curve") or []]))
        ax.set_ylim(*_limits([_pct(p.get(k_)) for p in points for k_ in ("y", "y_lo", "y_hi")]
                             + [_pct(c[1]) for p in points for c in p.get("curve") or []]))
        ax.set_xlabel(xlabel + "  →  better", fontsize=11)
        ax.set_ylabel(ylabel + "  →  better", fontsize=11)
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=10)
        ax.grid(True, color="0.9", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
        fig.tight_layout()
        _place_labels(fig, ax, [lab for lab in named + labels if not (math.isnan(lab[0]) or math.isnan(lab[1]))])
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


__all__ = ["ASPECT_BOUNDS", "Drawn", "check_figure", "figure_texts", "heatmap", "language_bars", "pareto_figure"]
