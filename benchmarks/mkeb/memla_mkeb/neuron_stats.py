"""Neuron-level diagnostics of MEMLA's knowledge neurons, read from a neuron cache (authors' JSON format).

What the numbers answer: how large each language's set is, how much the languages share, how
large the language-independent set (LIKN) and the language-specific set (LSKN) come out under
the paper's rule (intersection) or a k-of-n rule, how many of a fact's neurons are generic
(selected for many unrelated background facts), and in which layers the neurons sit. Pure
functions over ``{lang: {record id: set of (layer, index)}}``; the CLI is
``benchmarks/mkeb/neuron_diagnostics.py``.
"""
from __future__ import annotations

import statistics
from collections import Counter
from itertools import combinations
from typing import Iterable, Mapping, Optional, Sequence

from memla_plugin.neurons.background import generic_neurons
from memla_plugin.neurons.sets import shared_by

Neuron = tuple[int, int]
Sets = Mapping[str, Mapping[str, set[Neuron]]]  # lang -> record id -> neurons


def summary(values: Sequence[float]) -> dict[str, float]:
    """mean, median, min, max and the share of zeros of a list of counts."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
            "min": min(values), "max": max(values), "zero_share": sum(v == 0 for v in values) / len(values)}


def common_records(sets: Sets, langs: Iterable[str]) -> list[str]:
    """Record ids present in every language of ``langs``, in the first language's order."""
    langs = list(langs)
    return [r for r in sets[langs[0]] if all(r in sets[l] for l in langs)]


def set_sizes(sets: Sets, langs: Sequence[str], records: Sequence[str]) -> dict[str, dict[str, float]]:
    return {lang: summary([len(sets[lang][r]) for r in records]) for lang in langs}


def pair_overlaps(sets: Sets, langs: Sequence[str], records: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per language pair: mean |A ∩ B| and mean Jaccard over records."""
    out = {}
    for a, b in combinations(langs, 2):
        inter = [len(sets[a][r] & sets[b][r]) for r in records]
        jac = [len(sets[a][r] & sets[b][r]) / max(1, len(sets[a][r] | sets[b][r])) for r in records]
        out[f"{a}&{b}"] = {"mean_shared": statistics.fmean(inter), "mean_jaccard": statistics.fmean(jac)}
    return out


def likn_lskn(sets: Sets, edit_lang: str, id_langs: Sequence[str], records: Sequence[str],
              min_langs: Optional[int] = None) -> dict[str, dict[str, float]]:
    """Sizes of LIKN (intersection, or shared by ``min_langs``) and LSKN = edit language minus LIKN."""
    k = len(id_langs) if min_langs is None else min(min_langs, len(id_langs))
    likn, lskn = [], []
    for r in records:
        shared = shared_by([sets[l][r] for l in id_langs], k)
        likn.append(len(shared))
        lskn.append(len(sets[edit_lang][r] - shared))
    return {"likn": summary(likn), "lskn": summary(lskn)}


def generic_share(sets: Sets, lang: str, records: Sequence[str], shares: Mapping[Neuron, float],
                  max_share: float) -> dict[str, float]:
    """Per record, the share of its ``lang`` neurons that are generic; and how many records hold >= 3."""
    generic = generic_neurons(shares, max_share)
    per_record = [len(sets[lang][r] & generic) / len(sets[lang][r]) for r in records if sets[lang][r]]
    counts = [len(sets[lang][r] & generic) for r in records]
    return {"mean_share": statistics.fmean(per_record) if per_record else 0.0, "n_generic": len(generic),
            "records_with_3_or_more": sum(c >= 3 for c in counts), "records": len(records)}


def leave_one_out_shares(sets: Mapping[str, set[Neuron]], record: str) -> dict[Neuron, float]:
    """Share of the *other* records of one language that select each neuron."""
    others = [s for r, s in sets.items() if r != record]
    counts = Counter(n for s in others for n in s)
    return {n: c / max(1, len(others)) for n, c in counts.items()}


def layer_histogram(neuron_sets: Iterable[set[Neuron]], num_layers: int) -> list[int]:
    """How many (record, neuron) pairs sit in each layer."""
    hist = [0] * num_layers
    for s in neuron_sets:
        for layer, _ in s:
            if 0 <= layer < num_layers:
                hist[layer] += 1
    return hist


def leave_one_out_generic(sets: Mapping[str, set[Neuron]], records: Sequence[str], max_share: float) -> dict[str, float]:
    """Per record, the share of its neurons that more than ``max_share`` of the *other* records also select.

    For a cache without a separate background (e.g. the committed series): the other records
    of the cache serve as the background of each one.
    """
    per_record, counts = [], []
    for r in records:
        generic = generic_neurons(leave_one_out_shares(sets, r), max_share) & sets[r]
        counts.append(len(generic))
        if sets[r]:
            per_record.append(len(generic) / len(sets[r]))
    return {"mean_share": statistics.fmean(per_record) if per_record else 0.0,
            "records_with_3_or_more": sum(c >= 3 for c in counts), "records": len(records)}


def setting_agreement(sets: Sets, other: Sets, langs: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per language, the Jaccard of each record's set under two attribution settings (records in both).

    Answers how much a switch such as the target form or the patched positions changes which
    neurons a fact gets: 1 means the same neurons, 0 disjoint sets.
    """
    out = {}
    for lang in langs:
        a, b = sets.get(lang, {}), other.get(lang, {})
        jac = [len(a[r] & b[r]) / max(1, len(a[r] | b[r])) for r in a if r in b]
        out[lang] = {**summary(jac), "same_set": sum(j == 1.0 for j in jac) / len(jac)} if jac else {"n": 0}
    return out

