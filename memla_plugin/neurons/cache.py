"""On-disk cache of selected neurons per (model, record, language), in the authors' format.

The MEMLA authors' code keeps one JSON file per language and model holding a list of
``{"example_id": ..., "relation_name": ..., "neurons": [[layer, index], ...]}``. This cache
reads and writes exactly that, so neuron files produced by their code can be dropped in
(point ``filename`` at their naming) and ours can be read by theirs.

Writes are atomic (temporary file + ``os.replace``) and serialised by the project's file lock
(:mod:`memla_plugin.locking`), so concurrent benchmark shards never leave a truncated or
half-merged file.
Reads are tolerant: ids may be int or str, ``relation_name`` may be absent, indices may be
floats such as ``3.0``; entries that are not readable are skipped with a warning, and a file
that is not valid JSON is moved aside (``.corrupt``) rather than overwritten.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from ..locking import file_lock

log = logging.getLogger(__name__)

Neuron = tuple[int, int]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("._") or "model"


def cache_key(
    model_name: str, steps: int, baseline: str, threshold: float, layers: Optional[Sequence[int]] = None,
    method: str = "ig",
) -> str:
    """A model key that also names the attribution settings that change the selected neurons.

    Integrated gradients is named by its step count (``m20``: the key caches always had);
    another method by its name in that place, since steps play no part in it.
    """
    base = Path(str(model_name).rstrip("/\\")).name or str(model_name)
    how = f"m{int(steps)}" if method == "ig" else str(method)
    key = f"{base}__{baseline}-{how}-t{float(threshold):g}"
    if layers is not None:
        key += "-L" + ".".join(str(int(l)) for l in sorted(set(layers)))
    return _safe(key)


def _parse_neurons(raw) -> list[Neuron]:
    out = []
    for item in raw:
        if isinstance(item, dict):
            item = (item.get("layer"), item.get("index", item.get("neuron")))
        layer, idx = item
        if float(layer) != int(float(layer)) or float(idx) != int(float(idx)):
            raise ValueError(f"non-integer neuron {item!r}")
        out.append((int(float(layer)), int(float(idx))))
    return out


def neuron_bounds(model, arch) -> tuple[int, int]:
    """(layers, neurons per layer) of ``model``: the FFN width is the attributed module's output size."""
    module = model.get_submodule(arch.attr_module(0))
    width = getattr(module, "out_features", None) or getattr(module, "nf", None)
    if width is None:
        width = module.weight.shape[0]
    return int(arch.num_layers), int(width)


class NeuronCache:
    """Neuron sets keyed by (example_id, language) for one model key, one JSON file per language."""

    def __init__(self, directory: Union[str, os.PathLike], model_key: str, filename: str = "{lang}.json"):
        self.directory = Path(directory)
        self.model_key = str(model_key)
        self.filename = filename
        self._mem: dict[str, dict[str, dict]] = {}

    def path(self, lang: str) -> Path:
        """The file holding ``lang``'s entries for this model.

        ``directory/<model_key>/<filename>``; a ``filename`` that names ``{model}`` itself
        (e.g. ``"{model}_{lang}.json"``) lives directly in ``directory``.
        """
        model = _safe(self.model_key)
        name = self.filename.format(lang=lang, model=model)
        return self.directory / name if "{model}" in self.filename else self.directory / model / name

    # ------------------------------------------------------------------ reading
    def _read_file(self, lang: str) -> dict[str, dict]:
        path = self.path(lang)
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "[]")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            log.warning("neuron cache %s is not valid JSON (%s); moved to %s", path, exc, aside)
            return {}
        if isinstance(data, dict):  # tolerate {"<id>": {...}} or a single entry
            data = [data] if "example_id" in data else [dict(v, example_id=k) for k, v in data.items()]
        entries: dict[str, dict] = {}
        for n, entry in enumerate(data if isinstance(data, list) else []):
            try:
                eid = str(entry["example_id"])
                neurons = _parse_neurons(entry.get("neurons") or [])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("neuron cache %s: entry %d skipped (%s)", path, n, exc)
                continue
            entries[eid] = {
                "example_id": entry["example_id"],
                "relation_name": entry.get("relation_name", ""),
                "neurons": neurons,
            }
        return entries

    def _entries(self, lang: str) -> dict[str, dict]:
        if lang not in self._mem:
            self._mem[lang] = self._read_file(lang)
        return self._mem[lang]

    def get(self, example_id, lang: str, bounds: Optional[tuple[int, int]] = None) -> Optional[set[Neuron]]:
        """The cached neurons of ``example_id`` in ``lang``, or None when not cached.

        ``bounds``: (number of layers, neurons per layer) of the model being edited. An entry
        naming a neuron outside them (written for another model, or damaged) is a miss, logged
        with its file, so the caller attributes afresh and :meth:`put` replaces it.
        """
        entry = self._entries(lang).get(str(example_id))
        if entry is None:
            return None
        if bounds is not None:
            n_layers, width = bounds
            bad = [n for n in entry["neurons"] if not (0 <= n[0] < n_layers and 0 <= n[1] < width)]
            if bad:
                log.warning("neuron cache %s: entry %s names neuron(s) %s outside this model (%d layers x %d "
                            "neurons); ignored and recomputed", self.path(lang), example_id, bad[:3], n_layers, width)
                return None
        return set(entry["neurons"])

    def relation(self, example_id, lang: str) -> Optional[str]:
        entry = self._entries(lang).get(str(example_id))
        return None if entry is None else entry["relation_name"]

    def example_ids(self, lang: str) -> list[str]:
        return list(self._entries(lang))

    # ------------------------------------------------------------------ writing
    def put(self, example_id, lang: str, relation: Optional[str], neurons: Iterable[Neuron]) -> None:
        """Store (replacing) the neurons of ``example_id`` in ``lang``; merged with concurrent writers."""
        path = self.path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "example_id": example_id,
            "relation_name": relation or "",
            "neurons": sorted({(int(l), int(i)) for l, i in neurons}),
        }
        with file_lock(path):
            entries = self._read_file(lang)  # re-read: another process may have written
            entries[str(example_id)] = entry
            payload = [
                {"example_id": e["example_id"], "relation_name": e["relation_name"],
                 "neurons": [[l, i] for l, i in e["neurons"]]}
                for e in entries.values()
            ]
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(payload, fh, ensure_ascii=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._mem[lang] = entries
