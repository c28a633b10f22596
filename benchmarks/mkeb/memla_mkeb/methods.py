"""Editors: every method behind one EasyEdit-style apply function.

MEMLA goes through ``memla_plugin.memla_main.apply_memla_to_model`` and the host's editors
through ``memla_plugin.easyedit.get_apply_fn``; both get ``(model, tok, [request], hparams,
return_orig_weights=True)`` and hand back ``(model, weights_copy)``. EasyEdit is imported
only when a baseline is actually run, so unedited/MEMLA runs work without it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Optional, Sequence

from .settings import BenchConfigError, MethodSpec


def jsonable(value: Any) -> Any:
    """Stats dicts -> JSON-serialisable values (tensors to lists, tuples to lists, keys to str)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)


def torch_device_for_easyedit(device: str) -> Any:
    """EasyEdit hparams want "cpu" or a CUDA index."""
    dev = str(device)
    if dev == "cpu":
        return "cpu"
    if dev == "cuda":
        return 0
    if dev.startswith("cuda:"):
        return int(dev.split(":", 1)[1])
    return dev


def _apply_overrides(hparams: Any, overrides: dict[str, Any], method: str) -> Any:
    if not overrides:
        return hparams
    if hasattr(hparams, "replace"):  # MEMLAHyperParams validates its own fields
        return hparams.replace(**overrides)
    if dataclasses.is_dataclass(hparams):
        known = {f.name for f in dataclasses.fields(hparams)}
        unknown = sorted(k for k in overrides if k not in known)
        if unknown:
            raise BenchConfigError(
                f"catalog.{method}.overrides: {', '.join(unknown)} not a field of {type(hparams).__name__}"
            )
        return dataclasses.replace(hparams, **overrides)
    for key, value in overrides.items():
        if not hasattr(hparams, key):
            raise BenchConfigError(f"catalog.{method}.overrides: {key} not a field of {type(hparams).__name__}")
        setattr(hparams, key, value)
    return hparams


class Editor:
    """One method, ready to edit a model in place and say how to undo it."""

    spec: MethodSpec

    def __init__(self, spec: MethodSpec, prompt_format: str = "bare") -> None:
        self.spec = spec
        self.prompt_format = prompt_format  # memla_plugin.prompt_format, as the run sets it
        self.hparams: Any = None
        self.apply_fn: Optional[Callable[..., Any]] = None

    @property
    def edits(self) -> bool:
        return self.apply_fn is not None

    def hparams_json(self) -> Optional[dict[str, Any]]:
        if self.hparams is None:
            return None
        if dataclasses.is_dataclass(self.hparams):
            return jsonable(dataclasses.asdict(self.hparams))
        return jsonable(vars(self.hparams))

    def edit(self, model: Any, tok: Any, request: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """Apply the edit; returns (model, weights_copy, stats). Raises what the method raises."""
        assert self.apply_fn is not None
        out_model, weights_copy = self.apply_fn(
            model, tok, [request], self.hparams, copy=False, return_orig_weights=True, keep_original_weight=False
        )
        if weights_copy is None:
            weights_copy = {}
        return out_model, weights_copy if callable(weights_copy) else dict(weights_copy), self.last_stats()

    def edit_many(self, model: Any, tok: Any, requests: list[dict[str, Any]]) -> tuple[Any, Any, dict[str, Any]]:
        """Several facts in one call of the apply function (:mod:`.batch`), as EasyEdit's batch_edit calls it."""
        assert self.apply_fn is not None
        out_model, weights_copy = self.apply_fn(
            model, tok, list(requests), self.hparams, copy=False, return_orig_weights=True, keep_original_weight=False
        )
        weights_copy = {} if weights_copy is None else weights_copy
        return out_model, weights_copy if callable(weights_copy) else dict(weights_copy), self.last_stats()

    def last_stats(self) -> dict[str, Any]:
        return {}

    def begin_sequence(self) -> None:
        """Edits from now on are kept, one after another (:mod:`.sequential`); weight editors need nothing."""

    def end_sequence(self) -> None:
        """The sequence is over and undone."""

    def sequence_state(self) -> Optional[dict[str, Any]]:
        """What a sequence interrupted now needs, besides the model's parameters, to go on in a later
        sitting (JSON); None when it cannot go on. Weight editors keep nothing of their own."""
        return {}

    def resume_sequence(self, state: dict[str, Any]) -> None:
        """Take up ``sequence_state()`` of an earlier sitting (after :meth:`begin_sequence`)."""

    def prompt_template(self, base: str) -> str:
        """The scoring template after the latest edit: ``base`` (the run's format) unless the method
        edits in context (IKE puts its demonstrations before every question)."""
        return base


class UneditedEditor(Editor):
    """The reference: no edit; its rows reuse the cached unedited scores."""


class MemlaEditor(Editor):
    """MEMLA and its ablations. ``neuron_cache_dir`` (when the hparams name none) lets every MEMLA
    variant and source language of a run share one attribution per (record, language): the
    selected neurons depend only on the model, the prompts and the attribution settings, all
    part of the cache key, so sharing changes run time, not results."""

    def __init__(self, spec: MethodSpec, hparams: Any, prompt_format: str = "bare") -> None:
        super().__init__(spec, prompt_format)
        from memla_plugin.memla_main import apply_memla_to_model

        self.hparams = hparams
        self.apply_fn = apply_memla_to_model

    def last_stats(self) -> dict[str, Any]:
        from memla_plugin.memla_main import last_edit_report

        report = last_edit_report()
        return jsonable(report.as_dict() if report is not None else {})


class EasyEditEditor(Editor):
    artifacts: dict[str, str] = {}  # trained artifacts' hashes (set by __init__; never mutated in place)

    def __init__(self, spec: MethodSpec, model: Any, tok: Any, hparams: Any, model_path: Optional[str] = None,
                 prompt_format: str = "bare") -> None:
        super().__init__(spec, prompt_format)
        from memla_plugin import easyedit as ee  # raises EasyEditNotFoundError with set-up advice

        ee.apply_host_fixes()
        hp = hparams
        if model_path is not None and getattr(hp, "model_name", None) != model_path:
            # cached statistics / MEND checkpoints are keyed by model_name: it must name the model edited
            if getattr(hp, "tokenizer_name", None) == hp.model_name:
                hp.tokenizer_name = model_path
            hp.model_name = model_path
        self.hparams = hp
        t0 = time.perf_counter()
        ee.prepare_baseline(spec.alg_name, model, tok, self.hparams)
        self.prepare_s = time.perf_counter() - t0
        self.apply_fn = ee.get_apply_fn(spec.alg_name)
        self.artifacts = trained_artifacts(spec.alg_name, self.hparams)

    def last_stats(self) -> dict[str, Any]:
        """Which trained artifact the edit used (MEND's checkpoint), so every row names it."""
        return dict(self.artifacts)

    def edit(self, model: Any, tok: Any, request: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The host's edit on a copy of ``request`` whose prompts are put in the run's format."""
        from memla_plugin.easyedit.formatting import format_request

        return super().edit(model, tok, format_request(request, tok, self.prompt_format))

    def sequence_state(self) -> Optional[dict[str, Any]]:
        """The host's context templates: ROME and MEMIT generate them once per process from the model at
        their first edit, which in a sequence is the loaded model; a later sitting must not generate
        them from a model that already holds edits."""
        from memla_plugin.easyedit.patches import context_template_caches

        return {"context_templates": context_template_caches()}

    def resume_sequence(self, state: dict[str, Any]) -> None:
        from memla_plugin.easyedit.patches import restore_context_template_caches

        restore_context_template_caches(state.get("context_templates") or {})

    def edit_many(self, model: Any, tok: Any, requests: list[dict[str, Any]]) -> tuple[Any, Any, dict[str, Any]]:
        from memla_plugin.easyedit.formatting import format_request

        return super().edit_many(model, tok, [format_request(r, tok, self.prompt_format) for r in requests])


def trained_artifacts(alg_name: str, hparams: Any) -> dict[str, str]:
    """The sha256 of a trained artifact an editor edits with, by field name; empty for the others.

    MEND's hypernetwork is trained on the machine that lacks it, and its training does not repeat
    bit for bit between sessions, so two MEND rows can come from different checkpoints under the same
    hparams file. Each row carries the hash; the file is read once per editor.
    """
    from pathlib import Path

    from memla_plugin.easyedit.hparams_map import canonical_alg
    from memla_plugin.hashing import file_sha256

    archive = getattr(hparams, "archive", None)
    if canonical_alg(alg_name) != "MEND" or not archive or not Path(str(archive)).is_file():
        return {}
    return {"mend_archive_sha256": file_sha256(Path(str(archive)))}


def _memla_hparams(spec: MethodSpec, device: str, neuron_cache_dir: Optional[str], prompt_format: str) -> Any:
    from memla_plugin.hparams import MEMLAHyperParams

    hp = MEMLAHyperParams.from_hparams(spec.hparams)  # type: ignore[arg-type]
    hp = hp.replace(device=device, prompt_format=prompt_format)  # the run's format wins over the file's
    if neuron_cache_dir is not None and not hp.neuron_cache_dir:
        hp = hp.replace(neuron_cache_dir=str(neuron_cache_dir))
    return _apply_overrides(hp, spec.overrides, spec.name)


def _host_hparams(spec: MethodSpec, device: str) -> Any:
    from memla_plugin import easyedit as ee  # raises EasyEditNotFoundError with set-up advice

    hp = ee.load_hparams(spec.alg_name, spec.hparams)
    if hasattr(hp, "device"):
        hp.device = torch_device_for_easyedit(device)
    return _apply_overrides(hp, spec.overrides, spec.name)


def build_hparams(spec: MethodSpec, device: str, neuron_cache_dir: Optional[str] = None,
                  prompt_format: str = "bare") -> Any:
    """The hparams ``spec`` will edit with (its file, then the catalog's overrides), validated.

    Called for every method before a model is loaded, so a bad file or override costs no
    model load and no unedited pass; the error names the catalog entry (``catalog.<name>: ...``).
    ``neuron_cache_dir``: where MEMLA editors share attributions (see :class:`MemlaEditor`).
    ``prompt_format``: the run's, which MEMLA's attribution and training then use.
    """
    from memla_plugin.errors import MEMLAError

    if spec.kind == "unedited":
        return None
    try:
        if spec.kind == "memla":
            return _memla_hparams(spec, device, neuron_cache_dir, prompt_format)
        if spec.alg_name == "IKE":
            from .ike_editor import ike_hparams

            return ike_hparams(spec, device)
        return _host_hparams(spec, device)
    except (MEMLAError, ValueError, TypeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        prefix = f"catalog.{spec.name}"
        raise BenchConfigError(text if text.startswith(prefix) else f"{prefix}: {text}") from None


def make_editor(spec: MethodSpec, model: Any, tok: Any, hparams: Any, model_path: Optional[str] = None,
                prompt_format: str = "bare", exclude_ids: Sequence[str] = ()) -> Editor:
    """The editor of ``spec`` with the ``hparams`` from :func:`build_hparams` (prepares baselines' statistics).

    ``model_path``: what the model was loaded from (a directory or hub id); host editors get it
    as ``model_name`` so their cached statistics belong to this model. ``prompt_format``: how
    every method puts its prompts to the model. ``exclude_ids``: the run's evaluated records,
    from which IKE never takes a demonstration.
    """
    if spec.kind == "unedited":
        return UneditedEditor(spec, prompt_format)
    if spec.kind == "memla":
        return MemlaEditor(spec, hparams, prompt_format)
    if spec.alg_name == "IKE":
        from .ike_editor import IKEEditor

        return IKEEditor(spec, tok, hparams, prompt_format, exclude_ids)
    return EasyEditEditor(spec, model, tok, hparams, model_path, prompt_format)


__all__ = ["EasyEditEditor", "Editor", "MemlaEditor", "UneditedEditor", "build_hparams", "jsonable", "make_editor"]
