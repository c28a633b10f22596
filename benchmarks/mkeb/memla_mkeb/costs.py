"""What an edit cost, from the rows: attribution served by the neuron cache, and per-row peak memory.

MEMLA rows share one attribution per (record, language) through the neuron cache
(``run.share_neurons``). The first row that needs it computes it and pays for it; every later
row (another source language, an ablation) reads it and does not. A plain mean of ``edit_s``
over such rows therefore understates what one MEMLA edit costs on its own. These helpers put the
attribution time back, taken from the row that measured it, so the report can show both.

Rows written by the harness carry ``edit_stats`` with ``neurons_per_lang`` (every language with
an attribution, computed or cached) and ``attribution_s_per_lang`` (only the computed ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

GIB = 1024**3
MIB = 1024**2


def computed_attributions(row: dict[str, Any]) -> dict[str, float]:
    """{language: seconds} of the attributions this row computed itself."""
    per_lang = (row.get("edit_stats") or {}).get("attribution_s_per_lang") or {}
    return {str(lang): float(s) for lang, s in per_lang.items() if s is not None}


def cached_languages(row: dict[str, Any]) -> list[str]:
    """Languages whose attribution this row read from the neuron cache (sorted)."""
    stats = row.get("edit_stats") or {}
    if not stats.get("cache_hits"):
        return []
    had = set(map(str, stats.get("neurons_per_lang") or {}))
    return sorted(had - set(computed_attributions(row)))


def attribution_index(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(record id, language) -> attribution seconds, from the rows that computed it.

    A pair computed by several rows (separate neuron caches, a redone row) gets the mean.
    """
    seen: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        for lang, s in computed_attributions(row).items():
            seen.setdefault((str(row.get("record_id")), lang), []).append(s)
    return {k: sum(v) / len(v) for k, v in seen.items()}


@dataclass(frozen=True)
class CachedAttribution:
    """Edit time with the cache's attributions added back, over one method's edited rows."""

    edits: int  # edited rows
    cached_edits: int  # rows that read at least one attribution from the cache
    cached: int  # cached (record, language) attributions over those rows
    found: int  # of which a row in the report measured the time
    mean_edit_s: Optional[float]  # mean of edit_s + measured cached time; None if any time is missing

    @property
    def complete(self) -> bool:
        return self.found == self.cached


def with_cached_attribution(rows: list[dict[str, Any]], index: dict[tuple[str, str], float]) -> CachedAttribution:
    """Mean edit time of ``rows`` had each row computed its cached attributions itself."""
    total, cached, found, cached_edits = 0.0, 0, 0, 0
    for row in rows:
        langs = cached_languages(row)
        cached_edits += bool(langs)
        total += float(row.get("edit_s") or 0.0)
        for lang in langs:
            cached += 1
            s = index.get((str(row.get("record_id")), lang))
            if s is not None:
                found += 1
                total += s
    mean = total / len(rows) if rows and found == cached else None
    return CachedAttribution(len(rows), cached_edits, cached, found, mean)


@dataclass(frozen=True)
class RowPeaks:
    """Per-row peak resident memory of one method (rows that recorded it)."""

    rows: int
    measured: int
    mean_gib: Optional[float]
    max_gib: Optional[float]
    max_start_gib: Optional[float]  # the most that was resident when one of its rows began


def row_peaks(rows: list[dict[str, Any]]) -> RowPeaks:
    """Summarise ``row_peak_rss_mib`` / ``row_start_rss_mib`` (rows from older harnesses lack them)."""
    peaks = [float(r["row_peak_rss_mib"]) for r in rows if r.get("row_peak_rss_mib") is not None]
    starts = [float(r["row_start_rss_mib"]) for r in rows if r.get("row_start_rss_mib") is not None]
    to_gib = MIB / GIB
    return RowPeaks(
        rows=len(rows),
        measured=len(peaks),
        mean_gib=sum(peaks) / len(peaks) * to_gib if peaks else None,
        max_gib=max(peaks) * to_gib if peaks else None,
        max_start_gib=max(starts) * to_gib if starts else None,
    )

