"""Everything the report's sections show, computed once from the collected rows.

The sections (:mod:`.sections`) only format: the per-record values, bootstrap estimates, paired
changes against the unedited model, MEMLA-versus-baseline and variant comparisons and the source
x target means are all built here, so two sections that show the same number read the same object.
"""
from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .collect import Collected
from .compare import (
    Comparison,
    EstKey,
    VariantComparison,
    baselines_of,
    best_baseline,
    compare_variants,
    compare_with_best,
    variant_changes,
)
from .composite import (
    LOCALITY_METRIC,
    SUCCESS_METRICS,
    Triple,
    composite_difference,
    composite_estimate,
    record_triples,
    within_locality_margin,
)
from .invocation import Invocation, shown_path
from .settings import MKEB_LANGS
from .stats import (
    COUNTERFACT_METRICS,
    EASYEDIT_METRICS,
    MKEB_METRICS,
    VIEWS,
    Estimate,
    bootstrap,
    by_record,
    ordered_values,
    paired,
)

ALL_METRICS = MKEB_METRICS + COUNTERFACT_METRICS + EASYEDIT_METRICS
BASELINE_ORDER = ("rome", "memit", "mend", "ft_l", "ft_m", "lora")
#: The metric families, each with its own table.
FAMILIES = ((MKEB_METRICS, "MKEB metrics"),
            (COUNTERFACT_METRICS, "CounterFact-style probability comparisons"),
            (EASYEDIT_METRICS, "EasyEdit token-accuracy family"))

Grid = dict[str, dict[str, Optional[float]]]  # source -> target -> mean


def method_kinds(c: Collected) -> dict[str, str]:
    """unedited / memla / easyedit per method, from the plans, else from the rows (older rows: the name)."""
    kinds: dict[str, str] = {}
    for plan in c.plans:
        for m in plan.get("methods", []):
            kinds.setdefault(m["name"], m["kind"])
    for row in c.rows.values():
        name = row["method"]
        if name not in kinds:
            kinds[name] = row.get("kind") or (
                "unedited" if name == "unedited" else "memla" if name.startswith("memla") else "easyedit"
            )
    from .method_status import NOT_FUNCTIONAL, not_functional

    for name in not_functional(c.run_dirs):  # marked by the run dirs' evidence: no longer a baseline
        if kinds.get(name) == "easyedit":
            kinds[name] = NOT_FUNCTIONAL
    return kinds


def method_order(names: Sequence[str], kinds: dict[str, str]) -> list[str]:
    """Unedited first, then MEMLA and its variants, then the baselines in the paper's order."""
    def rank(n: str) -> tuple:
        k = kinds.get(n, "easyedit")
        if k == "unedited":
            return (0, 0, n)
        if k == "memla":
            return (1, 0 if n == "memla" else 1, n)
        return (2, BASELINE_ORDER.index(n) if n in BASELINE_ORDER else len(BASELINE_ORDER), n)

    return sorted(set(names), key=rank)


def lang_order(langs: Sequence[str]) -> list[str]:
    """MKEB's language order; unknown codes after them, alphabetically."""
    return sorted(set(langs), key=lambda x: (MKEB_LANGS.index(x) if x in MKEB_LANGS else len(MKEB_LANGS), x))


def metric_counts(scored: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """metric -> [(record, language) pairs with a value, pairs in all, pairs whose scores name the metric].

    A metric no row names at all was not measured (rows older than it); one named with ``None``
    values could not be computed from the data.
    """
    avail: dict[str, list[int]] = {m: [0, 0, 0] for m in ALL_METRICS}
    for r in scored:
        for lang, sc in r["scores"].items():
            for m in ALL_METRICS:
                avail[m][1] += 1
                avail[m][0] += sc.get(m) is not None
                avail[m][2] += m in sc
    return avail


@dataclass(frozen=True)
class Attempts:
    """One method's rows for one edit language: edits attempted, edited, failed (skipped apart)."""

    attempted: int
    edited: int
    failed: int
    skipped: int


@dataclass
class ReportData:
    """The collected rows and every number computed from them, for one report."""

    c: Collected
    shown: Invocation
    files_dir: str  # "<markdown stem>_files"
    n_boot: int
    seed: int
    plots: bool
    kinds: dict[str, str]
    rows: list[dict[str, Any]]
    methods: list[str]
    sources: list[str]
    targets: list[str]
    grouped: dict[tuple[str, str], list[dict[str, Any]]]
    scored: list[dict[str, Any]]
    avail: dict[str, list[int]]
    metrics: list[str]  # the metrics some row has a value for
    values: dict[EstKey, dict[str, float]] = field(default_factory=dict)
    ests: dict[EstKey, Estimate] = field(default_factory=dict)
    deltas: dict[EstKey, Estimate] = field(default_factory=dict)  # paired change against the unedited model
    present: dict[str, list[str]] = field(default_factory=dict)  # methods with rows, per edit language
    comparisons: dict[str, list[Comparison]] = field(default_factory=dict)
    variants: dict[str, list[VariantComparison]] = field(default_factory=dict)
    changes: dict[str, str] = field(default_factory=dict)  # a variant's hparams override, as text
    matrix: dict[tuple[str, str], Grid] = field(default_factory=dict)  # (method, metric) -> grid
    #: per edit language, the baselines within the locality margin (None: locality not measured)
    eligible: dict[str, Optional[list[str]]] = field(default_factory=dict)
    triples: dict[tuple[str, str, str], dict[str, Triple]] = field(default_factory=dict)  # (method, source, view)
    composites: dict[tuple[str, str, str], Estimate] = field(default_factory=dict)  # (method, source, view)
    #: (source, view) -> (best baseline by composite, MEMLA minus it paired, whether that is an interval)
    composite_best: dict[tuple[str, str], tuple[str, Estimate, bool]] = field(default_factory=dict)

    @classmethod
    def load(cls, c: Collected, out: Path, *, n_boot: int, seed: int, plots: bool, shown: Invocation) -> "ReportData":
        """Order the rows and compute every estimate and comparison the sections show."""
        kinds = method_kinds(c)
        rows = list(c.rows.values())
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            grouped[(r["method"], r["source"])].append(r)
        for v in grouped.values():
            v.sort(key=lambda r: (r.get("record_index", 0), str(r["record_id"])))
        scored = [r for r in rows if r.get("status") != "skipped" and r.get("scores")]
        avail = metric_counts(scored)
        d = cls(c, shown, out.stem + "_files", n_boot, seed, plots, kinds, rows,
                method_order([r["method"] for r in rows], kinds), lang_order([r["source"] for r in rows]),
                lang_order([t for r in scored for t in r["scores"]]), grouped, scored, avail,
                [m for m in ALL_METRICS if not (avail[m][1] and avail[m][0] == 0)])
        d._estimate()
        d._compare()
        d._composite()
        d._matrix()
        return d

    def shown_dir(self, results_file: Path) -> str:
        """The run dir of a results file, spelled from the run dir given on the command line."""
        c, i = self.c, self.c.file_run_dir.get(results_file, 0)
        given = self.shown.run_dirs[i] if i < len(self.shown.run_dirs) else shown_path(c.run_dirs[i])
        try:
            sub = results_file.parent.relative_to(c.run_dirs[i]).as_posix()
        except (ValueError, IndexError):
            return shown_path(results_file.parent)
        return given if sub == "." else posixpath.normpath(posixpath.join(given, sub))

    def attempts(self, method: str, source: str) -> Attempts:
        """Attempted / edited / failed / skipped rows of ``method`` for edit language ``source``."""
        g = self.grouped.get((method, source), [])
        st = [r.get("status", "ok") for r in g]
        failed, skipped = st.count("error"), st.count("skipped")
        return Attempts(len(g) - skipped, st.count("ok"), failed, skipped)

    def attempted(self, method: str) -> list[dict[str, Any]]:
        """Rows with an edit attempt (not skipped), every edit language."""
        return [r for s in self.sources for r in self.grouped.get((method, s), []) if r.get("status") in ("ok", "error")]

    def has(self, method: str, source: str) -> bool:
        return bool(self.grouped.get((method, source)))

    def _estimate(self) -> None:
        for s in self.sources:
            for m in self.methods:
                for metric in self.metrics:
                    for view in VIEWS:
                        vals = by_record(self.grouped.get((m, s), []), s, metric, view)
                        self.values[(m, s, metric, view)] = vals
                        self.ests[(m, s, metric, view)] = bootstrap(
                            ordered_values(vals), label=f"{m}|{s}|{metric}|{view}", seed=self.seed,
                            n_boot=self.n_boot)
        for s in self.sources:
            if not self.has("unedited", s):
                continue
            for m in self.methods:
                if m == "unedited" or not self.has(m, s):
                    continue
                for x in self.metrics:
                    for v in VIEWS:
                        self.deltas[(m, s, x, v)] = bootstrap(
                            self.paired_with_unedited(m, s, x, v), label=f"delta|{m}|{s}|{x}|{v}", seed=self.seed,
                            n_boot=self.n_boot)

    def paired_with_unedited(self, method: str, source: str, metric: str, view: str) -> list[float]:
        return paired(self.values[(method, source, metric, view)], self.values[("unedited", source, metric, view)])

    def _compare(self) -> None:
        self.changes = variant_changes(self.c.plans)
        for s in self.sources:
            self.present[s] = [m for m in self.methods if self.has(m, s)]
            ms = self.contenders(s)
            self.eligible[s] = self._within_margin(s, baselines_of(ms, self.kinds))
            self.comparisons[s] = compare_with_best(s, ms, self.kinds, self.metrics, self.ests, self.values,
                                                    seed=self.seed, n_boot=self.n_boot, restricted=SUCCESS_METRICS,
                                                    eligible=self.eligible[s])
            self.variants[s] = compare_variants(s, ms, self.kinds, self.metrics, self.values, seed=self.seed,
                                                n_boot=self.n_boot)

    def contenders(self, source: str) -> list[str]:
        """The methods compared head to head: those with rows, tuning-grid points left out.

        A grid point is one setting tried while choosing a method's operating point (shown in the
        tuning-grid section and as the method's curve), not a method or a variant of its own.
        """
        grid = {r["method"] for r in self.rows if r.get("grid_point")}
        return [m for m in self.present[source] if m not in grid]

    def _within_margin(self, source: str, baselines: Sequence[str]) -> Optional[list[str]]:
        """The baselines whose locality stays within the margin of the unedited model's (None: not measured)."""
        if LOCALITY_METRIC not in self.metrics or not self.has("unedited", source):
            return None
        return [b for b in baselines
                if within_locality_margin([self.deltas.get((b, source, LOCALITY_METRIC, v)) for v in VIEWS])]

    def _composite(self) -> None:
        """Each method's composite per edit language and view, and MEMLA minus the best baseline by it."""
        for s in self.sources:
            for m in self.present[s]:
                for v in VIEWS:
                    t = self.triples[(m, s, v)] = record_triples(self.grouped[(m, s)], s, v)
                    self.composites[(m, s, v)] = composite_estimate(t, label=f"composite|{m}|{s}|{v}", seed=self.seed,
                                                                    n_boot=self.n_boot)
            baselines = baselines_of(self.contenders(s), self.kinds)
            for v in VIEWS:
                ests = {(b, s, "composite", v): self.composites[(b, s, v)] for b in baselines}
                best = best_baseline(ests, s, "composite", v, baselines)
                if best is None or "memla" not in self.present[s] or self.composites[("memla", s, v)].mean is None:
                    continue
                diff, ok = composite_difference(self.triples[("memla", s, v)], self.triples[(best, s, v)],
                                                label=f"composite_vs_best|{s}|{v}", seed=self.seed, n_boot=self.n_boot)
                self.composite_best[(s, v)] = (best, diff, ok)

    def _matrix(self) -> None:
        for m in self.methods:
            for x in self.metrics:
                grid: Grid = {}
                for s in self.sources:
                    g = [r for r in self.grouped.get((m, s), []) if r.get("status") != "skipped" and r.get("scores")]
                    if not g:
                        continue
                    grid[s] = {}
                    for t in self.targets:
                        vals = self.matrix_values(g, t, x)
                        grid[s][t] = sum(vals) / len(vals) if vals else None
                self.matrix[(m, x)] = grid

    @staticmethod
    def matrix_values(rows: Sequence[dict[str, Any]], target: str, metric: str) -> list[float]:
        """The values of ``metric`` in ``target`` over ``rows`` (rows without one left out)."""
        return [float(r["scores"][target][metric]) for r in rows
                if target in r["scores"] and r["scores"][target].get(metric) is not None]

    def family(self, metrics: Sequence[str]) -> list[str]:
        """The metrics of one family that some row has a value for."""
        return [x for x in metrics if x in self.metrics]


__all__ = ["ALL_METRICS", "Attempts", "FAMILIES", "ReportData", "lang_order", "method_kinds", "method_order"]
