"""Per-record statistics for the report: views of a row, means and bootstrap intervals.

Every interval is a percentile bootstrap over records (resampling records with
replacement), with its own generator seeded from the report seed and the cell's label, so
a number does not depend on which other cells the report happens to contain.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from memla_plugin.mkeb.metric_registry import COUNTERFACT_METRICS

#: MKEB's own metrics and EasyEdit's teacher-forced token-accuracy family; the CounterFact-style
#: probability comparisons (NS_cf, the length-normalised views) come from the metric registry.
MKEB_METRICS = ("ES", "PS", "NS", "MQ")
EASYEDIT_METRICS = ("rel_acc", "gen_acc", "loc_acc", "port_acc")
VIEWS = ("e2e", "others")  # edit language -> edit language; mean over the other languages
VIEW_LABEL = {"e2e": "edit→edit", "others": "others"}


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: Optional[float]
    lo: Optional[float]
    hi: Optional[float]


def record_value(scores: Mapping[str, Mapping[str, Any]], source: str, metric: str, view: str) -> Optional[float]:
    """One record's value: the source language's score, or the mean over the other languages."""
    if view == "e2e":
        v = (scores.get(source) or {}).get(metric)
        return None if v is None else float(v)
    vals = [float(s[metric]) for lang, s in scores.items() if lang != source and s.get(metric) is not None]
    return sum(vals) / len(vals) if vals else None


def _rng(seed: int, label: str) -> Any:
    import numpy as np

    return np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])


def bootstrap(values: Sequence[float], *, label: str, seed: int, n_boot: int, level: float = 0.95) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap interval (resampling the values)."""
    import numpy as np

    n = len(values)
    if n == 0:
        return Estimate(0, None, None, None)
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if n == 1 or n_boot <= 0:
        return Estimate(n, mean, mean, mean)
    idx = _rng(seed, label).integers(0, n, size=(n_boot, n))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    # clamp float noise (a constant sample gives lo == hi == mean up to rounding)
    lo, hi = min(float(lo), mean), max(float(hi), mean)
    return Estimate(n, mean, lo, hi)


def interval_side(e: Estimate, has_interval: bool) -> Optional[int]:
    """+1 / -1 when the interval lies wholly above / below 0, 0 when it holds 0, None without an interval."""
    if not has_interval or e.lo is None or e.hi is None:
        return None
    return 1 if e.lo > 0 else -1 if e.hi < 0 else 0


#: what an interval of "subject minus other" says, by :func:`interval_side`
SAYS = {1: "higher", -1: "lower", 0: "no clear difference", None: "no interval"}


def paired(a: Mapping[str, float], b: Mapping[str, float]) -> list[float]:
    """Differences a - b on the records both have a value for, in record order."""
    return [a[k] - b[k] for k in sorted(set(a) & set(b), key=_id_order)]


def _id_order(x: str) -> tuple[int, Any]:
    try:
        return (0, int(x))
    except ValueError:
        return (1, x)


def counts_in_means(row: Mapping[str, Any]) -> bool:
    """Whether a row enters the means: an edit that ran and succeeded, or the unedited model.

    A failed edit (status ``error``) is scored on the unchanged model; averaging it in would
    credit the method with the unedited model's locality, so it is counted apart instead.
    """
    return row.get("status", "ok") == "ok" and bool(row.get("scores"))


def by_record(rows: Iterable[Mapping[str, Any]], source: str, metric: str, view: str) -> dict[str, float]:
    """{record id: value} of one method's successful rows for one source language (None values left out)."""
    out = {}
    for row in rows:
        if not counts_in_means(row):
            continue
        v = record_value(row["scores"], source, metric, view)
        if v is not None and not math.isnan(v):
            out[str(row["record_id"])] = v
    return out


def ordered_values(values: Mapping[str, float]) -> list[float]:
    return [values[k] for k in sorted(values, key=_id_order)]


def pct(x: Optional[float], signed: bool = False) -> str:
    """A fraction as percent with one decimal ("–" for missing; -0.0 printed as 0.0)."""
    if x is None:
        return "–"
    v = 100.0 * x
    if abs(v) < 0.05:
        v = 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


__all__ = [
    "COUNTERFACT_METRICS",
    "EASYEDIT_METRICS",
    "Estimate",
    "MKEB_METRICS",
    "SAYS",
    "VIEWS",
    "VIEW_LABEL",
    "bootstrap",
    "by_record",
    "counts_in_means",
    "ordered_values",
    "paired",
    "pct",
    "record_value",
]
