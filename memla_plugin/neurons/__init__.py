"""Knowledge-neuron attribution for MEMLA (MEMLA paper, arXiv 2406.11566, §3.1-3.2).

* :func:`attribute_prompt`: integrated-gradients scores of one prompt (fast or reference);
* :func:`find_neurons`: thresholded union over a fact's prompts;
* :func:`build_neuron_sets` / :class:`NeuronSets`: LIKN and LSKN grouped by layer;
* :class:`NeuronCache`: on-disk cache in the MEMLA authors' JSON format.

Submodules import torch lazily through these names, so importing the package is cheap.
"""
from __future__ import annotations

from ..lazy import lazy_getattr

_LAZY = {
    "attribute_prompt": ".selection",
    "score_prompt": ".selection",
    "AttributionSettings": ".settings",
    "find_neurons": ".selection",
    "select_neurons": ".selection",
    "build_neuron_sets": ".sets",
    "NeuronSets": ".sets",
    "group_by_layer": ".sets",
    "NeuronCache": ".cache",
    "cache_key": ".cache",
    "neuron_bounds": ".cache",
    "attribute_fast": ".fast",
    "attribute_reference": ".reference",
    "attribute_onepass": ".onepass",
    "EmptyPromptError": ".inputs",
    "MissingEOSError": ".inputs",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
