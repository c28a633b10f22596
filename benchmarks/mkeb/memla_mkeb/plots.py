"""Report figures (matplotlib, Agg backend): source x target heatmaps and per-language bars.

Figures are written with matplotlib's default style, a fixed size and DPI, and without the
PNG "Software" text chunk, so the same inputs give the same bytes on the same matplotlib.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

PNG_META = {"Software": None}


@contextmanager
def _figure(path: Path, size: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes under matplotlib's default style, laid out and saved to ``path`` on exit."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig, ax = plt.subplots(figsize=size)
        try:
            yield fig, ax
            fig.tight_layout()
            fig.savefig(path, format="png", dpi=100, metadata=PNG_META)
        finally:
            plt.close(fig)


def heatmap(
    path: Path,
    matrix: Mapping[str, Mapping[str, Optional[float]]],
    sources: Sequence[str],
    targets: Sequence[str],
    title: str,
) -> None:
    """``matrix[source][target]`` in [0, 1] as a colour grid with the values printed (x100)."""
    import numpy as np

    data = np.array([[np.nan if matrix[s].get(t) is None else float(matrix[s][t]) for t in targets] for s in sources])
    with _figure(path, (0.6 * len(targets) + 1.8, 0.5 * len(sources) + 1.3)) as (fig, ax):
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
    with _figure(path, (max(6.0, 0.75 * len(targets) * max(1, len(methods)) / 3 + 3) + 1.4, 3.4)) as (fig, ax):
        for k, method in enumerate(methods):
            ys = [values[method].get(t) for t in targets]
            ys = [np.nan if y is None else 100 * float(y) for y in ys]
            ax.bar(x - 0.4 + width * (k + 0.5), ys, width, label=method)
        ax.set_xticks(x, labels=list(targets))
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


__all__ = ["heatmap", "language_bars"]
