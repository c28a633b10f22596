"""``memla-mkeb-select RUN_DIR``: each method's operating point from its tuning-grid rows.

The rule was written down before any grid row existed (benchmarks/mkeb/README.md, "Tuning
grid"): per method, the grid point with the highest composite (:mod:`.composite`: harmonic
mean of the means of ES, PS and ``NS_cf``) on the "others" view of source ``en``, over the
records every point of the method has; composites within :data:`TIE_TOLERANCE` count as
equal and the tie goes to the weaker edit (the point listed first in the grid). This module
prints the table and the choice and writes them to ``RUN_DIR/selection.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from memla_plugin.errors import MEMLAError

from .composite import LOCALITY_METRIC, PARTS, composite_estimate, counts_for_composite, record_triples
from .grid import Knob, format_value, load_grid
from .stats import Estimate, _id_order

RULE = ("highest composite (harmonic mean of the means of ES, PS and NS_cf) on the others view, over the "
        "records every point of the method has; composites within 1e-9 tie and the tie goes to the weaker "
        "edit (the point listed first in the grid)")
TIE_TOLERANCE = 1e-9
DEFAULT_SOURCE, DEFAULT_VIEW = "en", "others"


@dataclass(frozen=True)
class PointResult:
    """One grid point on the method's common records: composite and the means of its parts."""

    name: str
    value: Any
    index: int
    attempted: int  # rows on the common records
    edited: int  # of which successful edits (``composite.n`` of them have all three parts)
    composite: Estimate
    parts: dict[str, Optional[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodChoice:
    method: str
    knob: str
    records: list[str]
    points: list[PointResult]
    chosen: Optional[str]  # the chosen point's name, None when no point has a composite

    def chosen_point(self) -> Optional[PointResult]:
        return next((p for p in self.points if p.name == self.chosen), None)


def choose(points: Sequence[PointResult]) -> Optional[PointResult]:
    """The point with the highest composite; ties (within TIE_TOLERANCE) go to the lowest grid index."""
    scored = [p for p in points if p.composite.mean is not None]
    if not scored:
        return None
    best = max(p.composite.mean for p in scored)  # type: ignore[type-var]
    tied = [p for p in scored if best - p.composite.mean <= TIE_TOLERANCE]  # type: ignore[operator]
    return min(tied, key=lambda p: p.index)


def _point_rows(rows: Iterable[Mapping[str, Any]], source: str) -> dict[str, list[Mapping[str, Any]]]:
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("source") == source and row.get("grid_point"):
            by_name.setdefault(str(row["method"]), []).append(row)
    return by_name


def _means(triples: Mapping[str, tuple[float, float, float]]) -> dict[str, Optional[float]]:
    n = len(triples)
    return {p: (sum(t[i] for t in triples.values()) / n if n else None) for i, p in enumerate(PARTS)}


def select_method(knob: Knob, rows_by_name: Mapping[str, Sequence[Mapping[str, Any]]], *, source: str, view: str,
                  seed: int, n_boot: int) -> MethodChoice:
    """Apply the rule to one method's grid points (rows keyed by the point's method name)."""
    names = knob.names()
    record_sets = [{str(r["record_id"]) for r in rows_by_name.get(n, ())} for n in names]
    common = sorted(set.intersection(*record_sets) if record_sets else set(), key=_id_order)
    points = []
    for index, (name, value) in enumerate(zip(names, knob.values)):
        rows = [r for r in rows_by_name.get(name, ()) if str(r["record_id"]) in common]
        triples = record_triples(rows, source, view)
        est = composite_estimate(triples, label=f"grid|{name}|{source}|{view}", seed=seed, n_boot=n_boot)
        points.append(PointResult(name, value, index, len(rows), sum(map(counts_for_composite, rows)),
                                  est, _means(triples)))
    best = choose(points)
    return MethodChoice(knob.method, knob.knob, common, points, best.name if best else None)


def select(rows: Iterable[Mapping[str, Any]], knobs: Sequence[Knob], *, source: str = DEFAULT_SOURCE,
           view: str = DEFAULT_VIEW, seed: int = 0, n_boot: int = 2000) -> list[MethodChoice]:
    """Every grid method's choice from result rows (those without ``grid_point`` are ignored)."""
    by_name = _point_rows(rows, source)
    return [select_method(k, by_name, source=source, view=view, seed=seed, n_boot=n_boot)
            for k in knobs if any(n in by_name for n in k.names())]


def _fmt(x: Optional[float], scale: float = 100.0) -> str:
    return "-" if x is None else f"{scale * x:.1f}"


def table_lines(choices: Sequence[MethodChoice]) -> list[str]:
    """The plain-text table ``main`` prints: one line per point, the chosen one starred."""
    out = [f"{'point':<22} {'records':>7} {'edited':>6} {'composite [95% CI]':>24} {'ES':>6} {'PS':>6} "
           f"{LOCALITY_METRIC:>6}"]
    for c in choices:
        for p in c.points:
            e = p.composite
            ci = "-" if e.mean is None else f"{_fmt(e.mean)} [{_fmt(e.lo)}, {_fmt(e.hi)}]"
            star = " *" if p.name == c.chosen else ""
            out.append(f"{p.name:<22} {p.attempted:>7} {p.edited:>6} {ci:>24} {_fmt(p.parts.get('ES')):>6} "
                       f"{_fmt(p.parts.get('PS')):>6} {_fmt(p.parts.get(LOCALITY_METRIC)):>6}{star}")
        out.append(f"  -> {c.method}: {c.knob}={format_value(c.chosen_point().value)}" if c.chosen
                   else f"  -> {c.method}: no choice (no point has a composite on {len(c.records)} common records)")
    return out


def selection_json(choices: Sequence[MethodChoice], *, source: str, view: str, seed: int, n_boot: int) -> dict[str, Any]:
    """What ``selection.json`` holds: the rule, the settings and every method's points and choice."""
    methods = {}
    for c in choices:
        chosen = c.chosen_point()
        methods[c.method] = {
            "knob": c.knob, "records": c.records,
            "chosen": None if chosen is None else {"name": chosen.name, "value": chosen.value},
            "points": [{**{k: v for k, v in asdict(p).items() if k != "composite"}, "composite": asdict(p.composite)}
                       for p in c.points],
        }
    return {"rule": RULE, "source": source, "view": view, "bootstrap": n_boot, "seed": seed, "methods": methods}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point (``memla-mkeb-select``)."""
    ap = argparse.ArgumentParser(prog="memla-mkeb-select", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--grid", type=Path, default=None, help="grid file (default: the shipped conf/grid/default.yaml)")
    ap.add_argument("--source", default=DEFAULT_SOURCE)
    ap.add_argument("--view", default=DEFAULT_VIEW, choices=("e2e", "others"))
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from .collect import collect

    try:
        rows = collect([args.run_dir]).rows.values()
        choices = select(rows, load_grid(args.grid), source=args.source, view=args.view, seed=args.seed,
                         n_boot=args.bootstrap)
    except MEMLAError as exc:
        print(f"memla-mkeb-select: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if not choices:
        print(f"memla-mkeb-select: error: no grid rows for source {args.source} in {args.run_dir}", file=sys.stderr)
        return 2
    print(f"rule: {RULE}\nsource {args.source}, view {args.view}\n" + "\n".join(table_lines(choices)))
    out = args.run_dir / "selection.json"
    payload = selection_json(choices, source=args.source, view=args.view, seed=args.seed, n_boot=args.bootstrap)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"memla-mkeb-select: wrote {out}")
    return 0


__all__ = ["MethodChoice", "PointResult", "RULE", "TIE_TOLERANCE", "choose", "main", "select", "select_method",
           "selection_json", "table_lines"]


if __name__ == "__main__":
    sys.exit(main())
