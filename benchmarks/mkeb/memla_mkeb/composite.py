"""The composite score: one number per method that edit success alone cannot win.

Following the "Score" of the CounterFact evaluation (Meng et al., ROME, 2022), the composite
is the harmonic mean of edit success (ES), paraphrase success (PS) and a locality figure, so a
method that writes ``target_new`` everywhere (ES and PS near 1, locality near 0) scores near 0.
It is computed from the three *means* over records, not per record: per record ES is a 0/1
value, and a per-record harmonic mean would be 0 whenever one of them is.

The locality figure is :data:`LOCALITY_METRIC`, CounterFact's neighbourhood comparison
(``NS_cf``: the share of neighbourhood prompts where P(target_true) > P(target_new) after
the edit). It is a teacher-forced probability comparison like ES and PS, so the three parts
share one scale, and unlike the generation-based NS it does not sit at the floor on a model
that answers neighbourhood questions in its own words. ``loc_acc`` is kept beside it in the
tables but does not enter the composite: it is 1.0 for the unedited model by construction.

Intervals are percentile bootstraps over records (the three metrics of a record are resampled
together), seeded like every other interval of the report (:mod:`.stats`). A paired difference
resamples the records both methods have. Only rows of edits that succeeded count: a failed
edit (status ``error``) was scored on the unchanged model and says nothing about the method.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

from .stats import Estimate, _id_order, _rng, counts_in_means, record_value

#: The locality figure of the composite and of the locality margin in the Findings.
LOCALITY_METRIC = "NS_cf"
#: How far below the unedited model's locality (paired mean change of NS_cf, in both views)
#: a baseline may fall and still be compared with MEMLA on ES/PS; a baseline that gives up more
#: of the model's other knowledge wins ES/PS by overwriting, not by editing.
LOCALITY_MARGIN = 0.10
#: The metrics that reward writing target_new anywhere, compared only against baselines within the margin.
SUCCESS_METRICS = ("ES", "PS", "ES_norm", "PS_norm")
#: The parts of the composite in the summed view (the MKEB paper's per-sequence log-probability).
PARTS = ("ES", "PS", LOCALITY_METRIC)
#: The same parts compared by mean log-probability per token (ROME's way).
PARTS_NORM = ("ES_norm", "PS_norm", "NS_cf_norm")

Triple = tuple[float, float, float]
#: Whether a result row enters the means (the same rule as every other mean of the report).
counts_for_composite = counts_in_means


def composite(es: Optional[float], ps: Optional[float], loc: Optional[float]) -> Optional[float]:
    """Harmonic mean of ES, PS and locality (each in [0, 1]); None when any part is missing.

    A part equal to 0 makes the composite 0 (the limit of the harmonic mean).
    """
    parts = (es, ps, loc)
    if any(p is None or math.isnan(float(p)) for p in parts):
        return None
    vals = [float(p) for p in parts]  # type: ignore[arg-type]
    if any(v < 0.0 or v > 1.0 for v in vals):
        raise ValueError(f"composite parts must lie in [0, 1], got ES={es}, PS={ps}, locality={loc}")
    if min(vals) == 0.0:
        return 0.0
    return len(vals) / sum(1.0 / v for v in vals)


def record_triples(rows: Iterable[Mapping[str, Any]], source: str, view: str,
                   parts: Sequence[str] = PARTS) -> dict[str, Triple]:
    """{record id: (ES, PS, locality)} of one method's rows for one edit language and view.

    Records missing any of the three (old rows without ``NS_cf``, records without
    ``target_true``) and failed edits are left out.
    """
    out: dict[str, Triple] = {}
    for row in rows:
        if not counts_in_means(row) or row.get("source", source) != source:
            continue
        vals = [record_value(row["scores"], source, p, view) for p in parts]
        if any(v is None or math.isnan(v) for v in vals):
            continue
        out[str(row["record_id"])] = (vals[0], vals[1], vals[2])  # type: ignore[assignment]
    return out


def _composite_of_means(arr: Any) -> Any:
    """Composite of the column means of an (..., n, 3) array, vectorised over leading axes."""
    import numpy as np

    means = arr.mean(axis=-2)
    with np.errstate(divide="ignore"):
        inv = np.where(means > 0, 1.0 / np.where(means > 0, means, 1.0), np.inf)
    return np.where(np.isinf(inv).any(axis=-1), 0.0, 3.0 / inv.sum(axis=-1))


def _estimate(arr: Any, diff_of: Any, *, label: str, seed: int, n_boot: int, level: float) -> Estimate:
    import numpy as np

    n = arr.shape[-2]
    if n == 0:
        return Estimate(0, None, None, None)
    point = float(diff_of(arr))
    if n == 1 or n_boot <= 0:
        return Estimate(n, point, point, point)
    idx = _rng(seed, label).integers(0, n, size=(n_boot, n))
    boots = diff_of(arr[..., idx, :])  # records resampled along the record axis
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return Estimate(n, point, min(float(lo), point), max(float(hi), point))


def composite_estimate(triples: Mapping[str, Triple], *, label: str, seed: int, n_boot: int,
                       level: float = 0.95) -> Estimate:
    """The composite of the means over records, with a percentile bootstrap interval over records."""
    import numpy as np

    keys = sorted(triples, key=_id_order)
    arr = np.asarray([triples[k] for k in keys], dtype=np.float64).reshape(len(keys), 3)
    return _estimate(arr, _composite_of_means, label=label, seed=seed, n_boot=n_boot, level=level)


def composite_difference(a: Mapping[str, Triple], b: Mapping[str, Triple], *, label: str, seed: int,
                         n_boot: int, level: float = 0.95) -> tuple[Estimate, bool]:
    """Composite of ``a`` minus composite of ``b`` on the records both have, paired by record.

    Returns the estimate and whether it is an interval (a single pair or no resamples is a
    point, which must not be read as a win or a loss).
    """
    import numpy as np

    keys = sorted(set(a) & set(b), key=_id_order)
    arr = np.asarray([[a[k] for k in keys], [b[k] for k in keys]], dtype=np.float64).reshape(2, len(keys), 3)

    def diff_of(x: Any) -> Any:
        return _composite_of_means(x[0]) - _composite_of_means(x[1])

    e = _estimate(arr, diff_of, label=label, seed=seed, n_boot=n_boot, level=level)
    return e, e.n > 1 and n_boot > 0


def within_locality_margin(changes: Sequence[Optional[Estimate]], margin: float = LOCALITY_MARGIN) -> Optional[bool]:
    """Whether every paired locality change (one per view) stays above ``-margin``; None if one is missing."""
    if not changes or any(e is None or e.mean is None for e in changes):
        return None
    return all(e.mean >= -margin for e in changes)  # type: ignore[union-attr]


def method_composites(rows: Iterable[Mapping[str, Any]], source: str, view: str, *, seed: int, n_boot: int,
                      parts: Sequence[str] = PARTS) -> dict[str, Estimate]:
    """{method: composite estimate} over the result rows of one edit language and view.

    ``rows`` are result rows of any methods (``method``, ``source``, ``record_id``, ``status``,
    ``scores``); a grid search passes the rows of each grid point under its own method name.
    Methods whose rows lack a part get an estimate with ``n == 0`` and mean ``None``.
    """
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("source") == source:
            by_method.setdefault(str(row["method"]), []).append(row)
    return {m: composite_estimate(record_triples(rs, source, view, parts), label=f"composite|{m}|{source}|{view}",
                                  seed=seed, n_boot=n_boot)
            for m, rs in by_method.items()}


__all__ = [
    "LOCALITY_MARGIN",
    "LOCALITY_METRIC",
    "SUCCESS_METRICS",
    "PARTS",
    "PARTS_NORM",
    "Triple",
    "composite",
    "composite_difference",
    "composite_estimate",
    "counts_for_composite",
    "method_composites",
    "record_triples",
    "within_locality_margin",
]
