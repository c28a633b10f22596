"""Paired comparisons of one method against another, record by record.

Two comparisons feed the report: MEMLA against the best baseline (the "MEMLA minus the best
baseline" table and the Findings) and each MEMLA variant against full MEMLA (the ablation
table). Both are the same computation: the per-record difference on the records both methods
have, a percentile bootstrap of its mean, and an outcome read off the 95% interval (above 0,
below 0, or holding 0). Only the words for the outcome differ, so they live here once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

from .stats import VIEW_LABEL, VIEWS, Estimate, bootstrap, interval_side, paired

#: Outcomes of MEMLA minus the best baseline.
WIN, LOSS, TIE = "win", "loss", "inconclusive"
#: Outcomes of a MEMLA variant minus full MEMLA.
HIGHER, LOWER, UNRESOLVED = "higher", "lower", "inconclusive"

EstKey = tuple[str, str, str, str]  # (method, source, metric, view)
Values = Mapping[EstKey, Mapping[str, float]]  # per-record values of each cell


@dataclass(frozen=True)
class _Paired:
    """One method minus another on one (edit language, metric, view), paired by record.

    Subclasses add who is compared and ``diff``/``has_interval``, and name the outcomes.
    """

    WORDS: ClassVar[Mapping[int, str]]

    source: str
    metric: str
    view: str

    @property
    def outcome(self) -> Optional[str]:
        """The word for "above 0" / "below 0" / "holds 0"; None without an interval."""
        side = interval_side(self.diff, self.has_interval)  # type: ignore[attr-defined]
        return None if side is None else self.WORDS[side]

    @property
    def where(self) -> str:
        """'ES edit→edit': the metric and view the comparison is about."""
        return f"{self.metric} {VIEW_LABEL[self.view]}"


@dataclass(frozen=True)
class Comparison(_Paired):
    """MEMLA minus the best baseline, paired by record; outcomes ``win``/``loss``/``inconclusive``."""

    WORDS: ClassVar[Mapping[int, str]] = {1: WIN, -1: LOSS, 0: TIE}

    baseline: str
    memla: Estimate
    base: Estimate
    diff: Estimate
    has_interval: bool


@dataclass(frozen=True)
class VariantComparison(_Paired):
    """A MEMLA variant minus full MEMLA, paired by record; outcomes ``higher``/``lower``/``inconclusive``."""

    WORDS: ClassVar[Mapping[int, str]] = {1: HIGHER, -1: LOWER, 0: UNRESOLVED}

    variant: str
    diff: Estimate
    has_interval: bool


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], *, label: str, seed: int,
                      n_boot: int) -> tuple[Estimate, bool]:
    """Mean of ``a - b`` over the records both have, its bootstrap interval, and whether that is an interval.

    A single pair or no resamples gives a point, which must not be read as a win or a loss.
    """
    e = bootstrap(paired(a, b), label=label, seed=seed, n_boot=n_boot)
    return e, e.n > 1 and n_boot > 0


def baselines_of(methods: Sequence[str], kinds: Mapping[str, str]) -> list[str]:
    """The methods that count as baselines: host editors only (no unedited model, no MEMLA variant)."""
    return [m for m in methods if kinds.get(m) == "easyedit"]


def variants_of(methods: Sequence[str], kinds: Mapping[str, str]) -> list[str]:
    """The MEMLA variants among ``methods``, in their given order."""
    return [m for m in methods if kinds.get(m) == "memla" and m != "memla"]


def best_baseline(ests: Mapping[EstKey, Estimate], source: str, metric: str, view: str,
                  baselines: Sequence[str]) -> Optional[str]:
    """The baseline with the highest mean; a tie goes to the one listed first. None if none has a value."""
    cands = [(ests[(b, source, metric, view)].mean, b) for b in baselines
             if ests[(b, source, metric, view)].mean is not None]
    if not cands:
        return None
    return max(cands, key=lambda t: (t[0], -baselines.index(t[1])))[1]


def pair_label(subject: str, other: str, source: str, metric: str, view: str) -> str:
    """The bootstrap label of ``subject`` minus ``other``: one pair gets one interval wherever it is shown.
    (MEMLA against the best baseline keeps the label its published intervals were drawn with.)"""
    return f"vsbest|{source}|{metric}|{view}" if subject == "memla" else f"{subject}|{other}|{source}|{metric}|{view}"


def compare_with_best(source: str, methods: Sequence[str], kinds: Mapping[str, str], metrics: Sequence[str],
                      ests: Mapping[EstKey, Estimate], values: Values, *,
                      seed: int, n_boot: int, restricted: Sequence[str] = (),
                      eligible: Optional[Sequence[str]] = None, subject: str = "memla") -> list[Comparison]:
    """Every (metric, view) of ``source`` where ``subject`` (MEMLA, or a preset of it) and some baseline
    have values, in metric order.

    For the metrics in ``restricted`` the best baseline is picked among ``eligible`` only (the
    baselines that keep the model's other knowledge; ``None``: every baseline).
    """
    baselines = baselines_of(methods, kinds)
    if subject not in methods or not baselines:
        return []
    out = []
    for x in metrics:
        pool = baselines if eligible is None or x not in restricted else [b for b in baselines if b in eligible]
        for v in VIEWS:
            best = best_baseline(ests, source, x, v, pool)
            if best is None or ests[(subject, source, x, v)].mean is None:
                continue
            e, ok = paired_difference(values[(subject, source, x, v)], values[(best, source, x, v)],
                                      label=pair_label(subject, best, source, x, v), seed=seed, n_boot=n_boot)
            out.append(Comparison(source, x, v, best, ests[(subject, source, x, v)], ests[(best, source, x, v)],
                                  e, has_interval=ok))
    return out


def compare_variants(source: str, methods: Sequence[str], kinds: Mapping[str, str], metrics: Sequence[str],
                     values: Values, *, seed: int, n_boot: int) -> list[VariantComparison]:
    """Every variant of ``source`` minus ``memla``, per metric and view, where both have values."""
    if "memla" not in methods:
        return []
    out = []
    for variant in variants_of(methods, kinds):
        for x in metrics:
            for v in VIEWS:
                mine, full = values.get((variant, source, x, v), {}), values.get(("memla", source, x, v), {})
                if not paired(mine, full):
                    continue
                e, ok = paired_difference(mine, full, label=f"variant|{variant}|{source}|{x}|{v}", seed=seed,
                                          n_boot=n_boot)
                out.append(VariantComparison(source, x, v, variant, e, has_interval=ok))
    return out


def variant_changes(plans: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """What each method changes in its hparams, from the run plans' ``overrides`` ("use_masks=false").

    A method whose plans disagree lists every setting seen, so nothing is hidden.
    """
    seen: dict[str, list[str]] = {}
    for plan in plans:
        for m in plan.get("methods", []):
            over = m.get("overrides") or {}
            text = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(over.items()))
            if text and text not in seen.setdefault(m["name"], []):
                seen[m["name"]].append(text)
    return {name: "; ".join(texts) for name, texts in seen.items()}


def join_words(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return "".join(parts) if len(parts) <= 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def n_span(comps: Sequence[Any]) -> str:
    """The number of paired records behind ``comps``: '12' or '4–12'."""
    ns = sorted({c.diff.n for c in comps})
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"


__all__ = [
    "Comparison",
    "HIGHER",
    "LOSS",
    "LOWER",
    "TIE",
    "UNRESOLVED",
    "VariantComparison",
    "WIN",
    "baselines_of",
    "best_baseline",
    "compare_variants",
    "compare_with_best",
    "join_words",
    "n_span",
    "pair_label",
    "paired_difference",
    "variant_changes",
    "variants_of",
]
