"""IKE in the harness: no weight changes, its demonstrations before every evaluated question.

EasyEdit's IKE (:mod:`memla_plugin.easyedit.ike`) returns the demonstrations it retrieved instead
of an edited model, and EasyEdit then asks every evaluation question after them and after the new
fact. Here the editor keeps that context and hands it to the scorer as part of the prompt template
(:meth:`IKEEditor.prompt_template`), inside the run's prompt format, so every evaluated prompt of
every language (edit, paraphrase, neighbourhood and multi-hop questions) carries it, as EasyEdit's
``compute_icl_edit_quality`` does. The unedited reference is scored without it, as EasyEdit's
pre-edit locality is. The demonstrations come from the train split in the edit language, never
from a record the run evaluates.
"""
from __future__ import annotations

import time
from typing import Any, Optional, Sequence

from .methods import Editor, _apply_overrides, torch_device_for_easyedit
from .settings import MethodSpec


def ike_hparams(spec: MethodSpec, device: str) -> Any:
    """EasyEdit's ``IKEHyperParams`` from the method's file; ``sentence_model_name: default`` -> the packaged encoder."""
    from memla_plugin import easyedit as ee
    from memla_plugin.easyedit.ike import resolve_encoder

    hp = ee.load_hparams("IKE", spec.hparams)
    hp.device = torch_device_for_easyedit(device)
    hp.sentence_model_name = resolve_encoder(hp.sentence_model_name)
    return _apply_overrides(hp, spec.overrides, spec.name)


class IKEEditor(Editor):
    """Retrieves demonstrations per edit; the model is never changed."""

    def __init__(self, spec: MethodSpec, tok: Any, hparams: Any, prompt_format: str = "bare",
                 exclude_ids: Sequence[str] = ()) -> None:
        super().__init__(spec, prompt_format)
        self.hparams = hparams
        self.exclude_ids = [str(x) for x in exclude_ids]
        self.pools: dict[str, tuple[Any, str]] = {}  # edit language -> (pool, results_dir)
        self.context = ""
        self.stats: dict[str, Any] = {}
        self.facts: Optional[list[str]] = None  # in a sequence: every fact edited so far
        self.apply_fn = self._retrieve  # marks the method as one that edits

    def _pool(self, lang: str) -> Any:
        """The language's train-split pool, embedded once (cached on disk across runs)."""
        if lang not in self.pools:
            from memla_plugin.easyedit.ike import pool_key, prepare_pool, train_facts
            from memla_plugin.easyedit.paths import ike_dir
            from memla_plugin.mkeb.loader import load_mkeb

            facts = train_facts(load_mkeb(None, "train"), lang, self.exclude_ids)
            pool = prepare_pool(self.hparams, facts, ike_dir(), pool_key(self.hparams.sentence_model_name, lang, facts))
            self.pools[lang] = (pool, self.hparams.results_dir)
        pool, self.hparams.results_dir = self.pools[lang]
        return pool

    def _retrieve(self, model: Any, tok: Any, request: dict[str, Any]) -> list[str]:
        from memla_plugin.easyedit.ike import retrieve

        return retrieve(model, tok, request, self.hparams, self._pool(request.get("edit_lang") or "en"))

    def edit(self, model: Any, tok: Any, request: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """Retrieve the demonstrations for ``request``; returns the unchanged model and no weights."""
        from memla_plugin.easyedit.ike import ike_context, new_fact_line

        self.context, self.stats = "", {}
        t0 = time.perf_counter()
        demos = self._retrieve(model, tok, request)
        self.context = ike_context(demos, request)
        if self.facts is not None:  # a sequence: the latest fact's demonstrations, then all facts so far
            self.facts.append(new_fact_line(request))
            self.context = "".join(demos) + "".join(self.facts) + "Prompt: "
        self.stats = {"n_demos": len(demos), "retrieval_s": time.perf_counter() - t0,
                      "context_tokens": len(tok(self.context, add_special_tokens=False)["input_ids"]),
                      "demonstrations": demos}
        return model, {}, self.last_stats()

    def last_stats(self) -> dict[str, Any]:
        return dict(self.stats)

    def begin_sequence(self) -> None:
        """From now on the context keeps every new fact (the in-context analogue of keeping weights)."""
        self.facts, self.context = [], ""

    def end_sequence(self) -> None:
        self.facts, self.context = None, ""

    def sequence_state(self) -> Optional[dict[str, Any]]:
        """The facts edited so far and the latest context (the model itself is never changed)."""
        return {"facts": list(self.facts or []), "context": self.context}

    def resume_sequence(self, state: dict[str, Any]) -> None:
        self.facts, self.context = list(state["facts"]), state["context"]

    def prompt_template(self, base: str) -> str:
        from memla_plugin.prompt_format import with_context

        return with_context(base, self.context) if self.context else base


__all__ = ["IKEEditor", "ike_hparams"]
