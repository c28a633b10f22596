"""Language-independent and language-specific knowledge neurons (MEMLA paper, arXiv 2406.11566, §3.2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from collections import Counter
from typing import Iterable, Mapping, Optional

from ..errors import MissingLanguageError

Neuron = tuple[int, int]


def group_by_layer(neurons: Iterable[Neuron]) -> dict[int, list[int]]:
    """{layer: sorted neuron indices}, layers ascending, only layers that hold neurons."""
    out: dict[int, list[int]] = {}
    for layer, idx in neurons:
        out.setdefault(int(layer), []).append(int(idx))
    return {l: sorted(set(v)) for l, v in sorted(out.items())}


@dataclass
class NeuronSets:
    """LIKN and LSKN of one fact, each as {layer: [neuron indices]}."""

    likn: dict[int, list[int]] = field(default_factory=dict)
    lskn: dict[int, list[int]] = field(default_factory=dict)

    @property
    def n_likn(self) -> int:
        return sum(len(v) for v in self.likn.values())

    @property
    def n_lskn(self) -> int:
        return sum(len(v) for v in self.lskn.values())

    def layers(self) -> list[int]:
        """Every layer that holds a neuron of either set."""
        return sorted(set(self.likn) | set(self.lskn))

    def is_empty(self) -> bool:
        return self.n_likn == 0 and self.n_lskn == 0


def shared_by(sets: Iterable[set[Neuron]], min_count: int) -> set[Neuron]:
    """Neurons that occur in at least ``min_count`` of ``sets``."""
    counts = Counter(n for s in sets for n in s)
    return {n for n, c in counts.items() if c >= min_count}


def build_neuron_sets(
    per_lang: Mapping[str, Iterable[Neuron]], edit_lang: str, id_langs: Iterable[str],
    min_langs: Optional[int] = None,
) -> NeuronSets:
    """LIKN = intersection of the identification languages' sets; LSKN = edit language minus LIKN.

    ``min_langs`` (not in the paper) widens LIKN to the neurons found in at least that many
    identification languages (capped at their number); None is the paper's intersection.

    An empty ``id_langs`` means no language-independent set (LIKN empty, LSKN = every neuron
    of the edit language): the caller's way to edit with the language-specific editor alone.
    A language named but absent from ``per_lang`` is an error, not silently skipped, since
    intersecting over fewer languages would widen LIKN.
    """
    id_langs = list(dict.fromkeys(id_langs))
    missing = [l for l in [edit_lang, *id_langs] if l not in per_lang]
    if missing:
        raise MissingLanguageError(
            f"neuron sets missing for language(s) {missing} (have {sorted(per_lang)}); "
            f"edit_lang={edit_lang!r}, id_langs={id_langs}"
        )
    sets = {lang: {(int(l), int(i)) for l, i in per_lang[lang]} for lang in [edit_lang, *id_langs]}
    if not id_langs:
        likn: set[Neuron] = set()
    elif min_langs is None:
        likn = set.intersection(*(sets[l] for l in id_langs))
    else:
        likn = shared_by((sets[l] for l in id_langs), min(int(min_langs), len(id_langs)))
    lskn = sets[edit_lang] - likn
    return NeuronSets(likn=group_by_layer(likn), lskn=group_by_layer(lskn))
