"""MEMLA's variants against full MEMLA: the report's ablation table and its sentences.

A variant is any method of kind ``memla`` other than ``memla`` itself (no masks, one of the two
editors left out, another apply scale, ...). Its absolute scores come from fewer records than
MEMLA's when the ablations ran on a shorter prefix of the test ids, so comparing the means of
the per-method tables would mix record sets. Here every variant is compared with ``memla``
paired by record, over the records both have, and, as in :mod:`.findings`, a difference is
named only when its 95% bootstrap interval excludes zero.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .stats import VIEW_LABEL, VIEWS, Estimate, bootstrap, interval_side, paired, pct

HIGHER, LOWER, UNRESOLVED = "higher", "lower", "inconclusive"

EstKey = tuple[str, str, str, str]  # (method, source, metric, view)


@dataclass(frozen=True)
class VariantComparison:
    """A MEMLA variant minus full MEMLA on one (edit language, metric, view), paired by record."""

    source: str
    metric: str
    view: str
    variant: str
    diff: Estimate
    has_interval: bool

    @property
    def outcome(self) -> Optional[str]:
        """``higher``/``lower`` when the interval excludes 0, else ``inconclusive``; None without an interval."""
        side = interval_side(self.diff, self.has_interval)
        return None if side is None else {1: HIGHER, -1: LOWER, 0: UNRESOLVED}[side]


def variants_of(methods: Sequence[str], kinds: Mapping[str, str]) -> list[str]:
    """The MEMLA variants among ``methods``, in their given order."""
    return [m for m in methods if kinds.get(m) == "memla" and m != "memla"]


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


def compare_variants(source: str, methods: Sequence[str], kinds: Mapping[str, str], metrics: Sequence[str],
                     values: Mapping[EstKey, Mapping[str, float]], *, seed: int,
                     n_boot: int) -> list[VariantComparison]:
    """Every variant of ``source`` minus ``memla``, per metric and view, where both have values."""
    if "memla" not in methods:
        return []
    out = []
    for variant in variants_of(methods, kinds):
        for x in metrics:
            for v in VIEWS:
                d = paired(values.get((variant, source, x, v), {}), values.get(("memla", source, x, v), {}))
                if not d:
                    continue
                e = bootstrap(d, label=f"variant|{variant}|{source}|{x}|{v}", seed=seed, n_boot=n_boot)
                out.append(VariantComparison(source, x, v, variant, e, has_interval=e.n > 1 and n_boot > 0))
    return out


def _where(c: VariantComparison) -> str:
    return f"{c.metric} {VIEW_LABEL[c.view]}"


def _join(parts: Sequence[str]) -> str:
    return "".join(parts) if len(parts) <= 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _by(comps: Sequence[VariantComparison]) -> str:
    return _join([f"{_where(c)} by {pct(abs(c.diff.mean or 0.0))} points [{pct(c.diff.lo, True)}, "
                  f"{pct(c.diff.hi, True)}]" for c in comps])


def variants_paragraph(source: str, comps: Sequence[VariantComparison], changes: Mapping[str, str]) -> str:
    """One Findings paragraph: per variant, where it is above or below full MEMLA by an interval that excludes 0.

    Every metric of ``comps`` is named, the token-accuracy family too: on a small model the MKEB
    neighbourhood score can sit near 0 for every method, and locality then shows only in ``loc_acc``.
    """
    if not comps:
        return ""
    ns = sorted({c.diff.n for c in comps})
    span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    metrics = list(dict.fromkeys(c.metric for c in comps))
    parts = [f"**MEMLA variants, edit language {source}.** Each variant minus full MEMLA on "
             f"{', '.join(metrics)} (edit→edit and others), paired over the {span} records both have:"]
    variants = list(dict.fromkeys(c.variant for c in comps))
    for variant in variants:
        mine = [c for c in comps if c.variant == variant]
        what = f" ({changes[variant]})" if changes.get(variant) else ""
        lower = [c for c in mine if c.outcome == LOWER]
        higher = [c for c in mine if c.outcome == HIGHER]
        said = []
        if lower:
            said.append(f"lower on {_by(lower)}")
        if higher:
            said.append(f"higher on {_by(higher)}")
        rest = len(mine) - len(lower) - len(higher)
        if said:
            tail = f"; no difference the intervals support on the other {rest}" if rest else ""
            parts.append(f"`{variant}`{what} is {'; '.join(said)}{tail}.")
        else:
            parts.append(f"`{variant}`{what}: no interval excludes zero on any of its {len(mine)} comparisons.")
    return " ".join(parts)


def variants_table(comps: Sequence[VariantComparison], metrics: Sequence[str],
                   changes: Mapping[str, str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per variant, one "difference [95% CI]" cell per metric and view."""
    header = ["variant", "changes", "pairs"] + [f"{x} {VIEW_LABEL[v]}" for x in metrics for v in VIEWS]
    rows = []
    for variant in dict.fromkeys(c.variant for c in comps):
        cells = {(c.metric, c.view): c for c in comps if c.variant == variant}
        n = min(c.diff.n for c in cells.values())
        row = [variant, changes.get(variant, "–"), str(n)]
        for x in metrics:
            for v in VIEWS:
                c = cells.get((x, v))
                row.append("–" if c is None else f"{pct(c.diff.mean, True)} [{pct(c.diff.lo, True)}, "
                           f"{pct(c.diff.hi, True)}]")
        rows.append(row)
    return header, rows


__all__ = [
    "HIGHER",
    "LOWER",
    "UNRESOLVED",
    "VariantComparison",
    "compare_variants",
    "variant_changes",
    "variants_of",
    "variants_paragraph",
    "variants_table",
]
