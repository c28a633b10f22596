"""Background facts: neurons and prompts of unrelated facts, for the generic-neuron filter and the locality term.

Neither is part of the MEMLA paper (arXiv 2406.11566); both are switches of an improved preset.
A background directory holds, for facts of a training split that no evaluation reads:

* ``<neuron cache key>/<lang>.json``: their neuron sets in the authors' JSON format (one
  :class:`~memla_plugin.neurons.cache.NeuronCache` per attribution setting, so the filter always
  compares neurons found under the settings of the edit at hand);
* ``prompts.json``: ``{"provenance": {...}, "prompts": {lang: [{"id", "template", "prompt"}]}}``,
  their filled edit prompts, read by the locality term;
* ``provenance.json``: how and from what the directory was built (``benchmarks/mkeb/build_background.py``).

Generic neurons, in the spirit of the refining step of Dai et al. (2022, "Knowledge Neurons in
Pretrained Transformers"): a neuron selected for more than ``max_share`` of the background facts
carries no evidence about one particular fact, so it is dropped before the LIKN/LSKN split.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from ..errors import MEMLAError
from .cache import NeuronCache

Neuron = tuple[int, int]
PROMPTS_FILE = "prompts.json"
PROVENANCE_FILE = "provenance.json"


class BackgroundError(MEMLAError, ValueError):
    """The background directory lacks what a switch needs (named in the message)."""


class Background:
    """One background directory seen under one attribution setting (its neuron-cache key)."""

    def __init__(self, directory: Union[str, Path], model_key: str) -> None:
        self.directory = Path(directory)
        self.model_key = model_key
        if not self.directory.is_dir():
            raise BackgroundError(f"background_dir {str(self.directory)!r} is not a directory (build it with benchmarks/mkeb/build_background.py)")
        self._cache = NeuronCache(self.directory, model_key)
        prov = self.directory / PROVENANCE_FILE
        entry = json.loads(prov.read_text(encoding="utf-8")).get(model_key, {}) if prov.is_file() else {}
        #: the facts this setting's background consists of (None: every fact stored under it)
        self.fact_ids: Optional[list[str]] = [str(i) for i in entry["fact_ids"]] if "fact_ids" in entry else None

    # ------------------------------------------------------------------ neurons
    def neuron_sets(self, lang: str) -> list[set[Neuron]]:
        """The background facts' neuron sets in ``lang`` (empty list: none for this setting).

        When ``provenance.json`` lists the setting's facts, exactly those are read, and a
        language with some of them stored but not all is refused as an unfinished build.
        """
        stored = self._cache.example_ids(lang)
        if self.fact_ids is None or not stored:
            return [self._cache.get(eid, lang) or set() for eid in stored]
        missing = [i for i in self.fact_ids if self._cache.get(i, lang) is None]
        if missing:
            raise BackgroundError(
                f"background {str(self.directory)!r} under {self.model_key!r} lacks {len(missing)} of its "
                f"{len(self.fact_ids)} facts in {lang!r} (unfinished build? rerun benchmarks/mkeb/build_background.py)"
            )
        return [self._cache.get(i, lang) for i in self.fact_ids]

    def shares(self, lang: str, pool_langs: Iterable[str] = ()) -> tuple[dict[Neuron, float], int]:
        """({neuron: share of background facts selecting it}, number of facts) for ``lang``.

        A language the background lacks uses the facts of ``pool_langs`` pooled instead, so
        a background built in a few languages still filters the others.
        """
        sets = self.neuron_sets(lang)
        if not sets:
            sets = [s for other in pool_langs for s in self.neuron_sets(other)]
        if not sets:
            raise BackgroundError(
                f"background {str(self.directory)!r} has no neuron sets under {self.model_key!r} for {lang!r} "
                f"or {sorted(set(pool_langs))}; build it with benchmarks/mkeb/build_background.py under the same attribution settings"
            )
        counts = Counter(n for s in sets for n in s)
        return {n: c / len(sets) for n, c in counts.items()}, len(sets)

    def languages(self) -> list[str]:
        """Languages with background neuron sets under this setting."""
        return sorted(p.stem for p in self._cache.path("xx").parent.glob("*.json"))

    # ------------------------------------------------------------------ prompts
    def prompts(self, lang: str, n: int, template: Optional[str] = None) -> list[str]:
        """``n`` filled background prompts of ``lang``: those with ``template`` first, then file order."""
        path = self.directory / PROMPTS_FILE
        if not path.is_file():
            raise BackgroundError(f"background {str(self.directory)!r} has no {PROMPTS_FILE} (build it with benchmarks/mkeb/build_background.py)")
        entries = json.loads(path.read_text(encoding="utf-8")).get("prompts", {}).get(lang) or []
        if not entries:
            raise BackgroundError(f"background {str(path)!r} has no prompts in {lang!r}")
        same = [e["prompt"] for e in entries if template is not None and e.get("template") == template]
        rest = [e["prompt"] for e in entries if not (template is not None and e.get("template") == template)]
        return (same + rest)[:n]


def generic_neurons(shares: Mapping[Neuron, float], max_share: float) -> set[Neuron]:
    """Neurons selected for more than ``max_share`` of the background facts."""
    return {n for n, s in shares.items() if s > max_share}


def drop_generic(
    per_lang: Mapping[str, set[Neuron]], background: Background, max_share: float
) -> tuple[dict[str, set[Neuron]], dict[str, int]]:
    """Every language's neurons minus that language's generic ones; also how many each lost."""
    pool = background.languages()
    kept: dict[str, set[Neuron]] = {}
    dropped: dict[str, int] = {}
    for lang, found in per_lang.items():
        generic = generic_neurons(background.shares(lang, pool)[0], max_share)
        kept[lang] = set(found) - generic
        dropped[lang] = len(found) - len(kept[lang])
    return kept, dropped
