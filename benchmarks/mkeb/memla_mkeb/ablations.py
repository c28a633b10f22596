"""MEMLA's variants against full MEMLA: the report's ablation table and its sentences.

A variant is any method of kind ``memla`` other than ``memla`` itself (no masks, one of the two
editors left out, another apply scale, ...). Its absolute scores come from fewer records than
MEMLA's when the ablations ran on a shorter prefix of the test ids, so comparing the means of
the per-method tables would mix record sets. Here every variant is compared with ``memla``
paired by record, over the records both have (:func:`.compare.compare_variants`), and, as in
:mod:`.findings`, a difference is named only when its 95% bootstrap interval excludes zero.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from .compare import HIGHER, LOWER, VariantComparison, join_words, n_span
from .stats import VIEW_LABEL, VIEWS, pct


def _by(comps: Sequence[VariantComparison]) -> str:
    return join_words([f"{c.where} by {pct(abs(c.diff.mean or 0.0))} points [{pct(c.diff.lo, True)}, "
                       f"{pct(c.diff.hi, True)}]" for c in comps])


def variants_paragraph(source: str, comps: Sequence[VariantComparison], changes: Mapping[str, str]) -> str:
    """One Findings paragraph: per variant, where it is above or below full MEMLA by an interval that excludes 0.

    Every metric of ``comps`` is named, the token-accuracy family too: on a small model the MKEB
    neighbourhood score can sit near 0 for every method, and locality then shows only in ``loc_acc``.
    """
    if not comps:
        return ""
    span = n_span(comps)
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


__all__ = ["variants_paragraph", "variants_table"]
