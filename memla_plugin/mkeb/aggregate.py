"""Aggregation of per-record MKEB scores.

Inputs are what :func:`memla_plugin.mkeb.scoring.score_record` returns per record,
``{target_lang: {metric: value}}``, tagged with the edit (source) language. Values that are
``None`` (metric unavailable for that record) are left out of the means, and the count of
records behind every mean is kept so reports can show it.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from memla_plugin.languages import in_mkeb_order

from .metric_registry import METRICS

Scores = Mapping[str, Mapping[str, Any]]


def mean_scores(per_record: Iterable[Scores], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float | None]]:
    """Mean over records per target language: ``{lang: {metric: mean or None}}``."""
    sums: dict[str, dict[str, list[float]]] = {}
    for scores in per_record:
        for lang, row in scores.items():
            for m in metrics:
                value = row.get(m)
                if value is not None:
                    sums.setdefault(lang, {}).setdefault(m, []).append(float(value))
                else:
                    sums.setdefault(lang, {}).setdefault(m, [])
    return {
        lang: {m: (sum(v) / len(v) if v else None) for m, v in sums[lang].items()}
        for lang in in_mkeb_order(sums)
    }


def _pairs(results: Iterable[Any]) -> Iterable[tuple[str, Scores]]:
    """Accept ``(edit_lang, scores)`` tuples or dicts with ``edit_lang`` and ``scores``."""
    for item in results:
        if isinstance(item, Mapping):
            yield item["edit_lang"], item["scores"]
        else:
            src, scores = item
            yield src, scores


def cross_matrix(results: Iterable[Any], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, dict[str, float | None]]]:
    """Full source x target matrix: ``{metric: {edit_lang: {target_lang: mean}}}``."""
    by_src: dict[str, list[Scores]] = {}
    for src, scores in _pairs(results):
        by_src.setdefault(src, []).append(scores)
    means = {src: mean_scores(rows, metrics) for src, rows in by_src.items()}
    return {
        m: {src: {tgt: means[src][tgt].get(m) for tgt in means[src]} for src in in_mkeb_order(means)}
        for m in metrics
    }


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(results: Iterable[Any], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per edit language and metric: ``{"self": edit->edit, "others": mean over the other languages}``.

    "others" is the unweighted mean of the per-target-language means (every language counts
    the same), as in the MEMLA paper's tables.
    """
    matrix = cross_matrix(results, metrics)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for m, rows in matrix.items():
        for src, row in rows.items():
            out.setdefault(src, {})[m] = {
                "self": row.get(src),
                "others": _mean(v for tgt, v in row.items() if tgt != src),
            }
    return out


def format_table(per_lang: Mapping[str, Mapping[str, float | None]], metrics: Sequence[str] = ("ES", "PS", "NS", "MQ"),
                 scale: float = 100.0, title: str | None = None) -> str:
    """Plain-text table, one row per language plus the mean row; ``-`` marks unavailable values."""
    langs = in_mkeb_order(per_lang)
    width = max(7, *(len(m) + 2 for m in metrics))
    lines = [title] if title else []
    head = f"{'lang':<6}" + "".join(f"{m:>{width}}" for m in metrics)
    lines += [head, "-" * len(head)]

    def cell(v: float | None) -> str:
        return f"{v * scale:>{width}.1f}" if v is not None else f"{'-':>{width}}"

    for lang in langs:
        lines.append(f"{lang:<6}" + "".join(cell(per_lang[lang].get(m)) for m in metrics))
    lines.append("-" * len(head))
    lines.append(f"{'mean':<6}" + "".join(cell(_mean(per_lang[l].get(m) for l in langs)) for m in metrics))
    return "\n".join(lines)
