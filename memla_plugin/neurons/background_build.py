"""Building a background directory (see :mod:`.background`) from facts no evaluation reads.

The caller picks the facts (a training split) and passes them as EasyEdit requests; this
module attributes each fact with MEMLA's own attribution under the given settings and stores
the neuron sets in the authors' JSON format, one cache per attribution setting, resumably:
facts already stored are skipped. Prompts are written separately, since they do not depend on
the model.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from ..request import MultilingualRequest, fill
from .background import PROMPTS_FILE, PROVENANCE_FILE
from .cache import NeuronCache
from .selection import find_neurons
from .settings import AttributionSettings

LOG = logging.getLogger(__name__)


def write_prompts(out_dir: Union[str, Path], requests: Iterable[dict[str, Any]], provenance: dict[str, Any]) -> Path:
    """``prompts.json``: every request's filled edit prompt and template, per language."""
    prompts: dict[str, list[dict[str, Any]]] = {}
    for raw in requests:
        req = MultilingualRequest.from_easyedit(raw)
        for lang, fact in req.languages.items():
            if fact.prompt:
                prompts.setdefault(lang, []).append(
                    {"id": req.case_id, "template": fact.extra.get("template"), "prompt": fill(fact.prompt, fact.subject)}
                )
    path = Path(out_dir) / PROMPTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"provenance": provenance, "prompts": prompts}, ensure_ascii=False, indent=1), "utf-8")
    return path


def attribute_background(
    model: Any,
    tok: Any,
    arch: Any,
    requests: Sequence[dict[str, Any]],
    settings: AttributionSettings,
    model_name: str,
    out_dir: Union[str, Path],
    langs: Sequence[str],
    progress: Optional[Callable[[str], None]] = None,
) -> NeuronCache:
    """Neuron sets of every request in every language of ``langs`` under ``settings`` (resumable)."""
    cache = NeuronCache(out_dir, settings.cache_key(model_name))
    for n, raw in enumerate(requests):
        req = MultilingualRequest.from_easyedit(raw)
        for lang in langs:
            if cache.get(req.case_id, lang) is not None:
                continue
            inputs = req.attribution_inputs(lang)
            if inputs is None:
                LOG.warning("background fact %s has no %s version; skipped", req.case_id, lang)
                continue
            prompts, target_true = inputs
            t0 = time.perf_counter()
            found = find_neurons(model, tok, prompts, settings.attribution_target(target_true, lang, tok), arch, settings)
            cache.put(req.case_id, lang, req.relation, sorted(found))
            if progress is not None:
                progress(f"[{n + 1}/{len(requests)}] {req.case_id} {lang} {settings.target_form}: "
                         f"{len(found)} neurons in {time.perf_counter() - t0:.1f} s")
    return cache


def write_provenance(out_dir: Union[str, Path], provenance: dict[str, Any]) -> Path:
    """``provenance.json``: what the directory was built from and how (merged with what is there)."""
    path = Path(out_dir) / PROVENANCE_FILE
    old = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    old.update(provenance)
    path.write_text(json.dumps(old, ensure_ascii=False, indent=1, sort_keys=True), "utf-8")
    return path
