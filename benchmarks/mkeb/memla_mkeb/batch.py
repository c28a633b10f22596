"""Batch editing in the loop (``batch.size``): several facts in one edit, each scored after it, then undone.

A batch is ``batch.size`` consecutive selected records. Each method edits the whole batch in one go,
the way it edits several facts: MEMLA in one joint edit (``batch_mode: joint``, :mod:`memla_plugin.batch`,
unless the catalog entry sets ``batch_mode`` itself), and every host method that EasyEdit's
``BaseEditor.batch_edit`` accepts (MEMIT, FT, LoRA, MEND, ...) through one call of its apply function
with the list of requests. Methods EasyEdit does not batch (ROME) are applied one by one without
restoring in between, as a reference. Then every fact of the batch is scored on the model holding all
of them (ES/PS in every language, locality, NS_cf), the edits are undone and the weights checked bit
for bit against the load-time snapshot, as after a single edit.

One row per (method, source, batch) in ``batches*.jsonl`` (key ``batch<n>|method|source|first id``),
written when the batch is done; an interrupted batch leaves no row and is redone whole. Records whose
question lacks the subject for a method that needs it (ROME, MEMIT) are left out of that method's
batch and listed as skipped. A failed batch edit is one error for all its facts, scored as unedited.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from memla_plugin.errors import HParamsError

from . import envinfo, store
from .methods import Editor, jsonable
from .restore import ModelFlags
from .sequential import BULKY_STATS, Undo, _row_head, undo_and_verify
from .settings import BenchConfigError, MethodSpec

#: what a batch edit of MEMLA is unless the catalog entry's overrides say otherwise
MEMLA_BATCH_MODE = "joint"


def batch_hparams(spec: MethodSpec, hparams: Any) -> Any:
    """The hparams a batch edits with: MEMLA joint (unless overridden), checked before the model loads.

    MEMLA's joint edit attributes every fact on the unedited model, so the shared neuron cache stays;
    a sequential MEMLA batch attributes on the edited model, so it goes without the cache.
    """
    if spec.kind != "memla" or hparams is None:
        return hparams
    if "batch_mode" not in spec.overrides:
        hparams = hparams.replace(batch_mode=MEMLA_BATCH_MODE)
    if hparams.batch_mode == "sequential":
        return hparams.replace(neuron_cache_dir=None) if hparams.neuron_cache_dir else hparams
    from memla_plugin.batch import check_joint

    try:
        check_joint(hparams)
    except HParamsError as exc:
        raise BenchConfigError(f"catalog.{spec.name}: {exc}") from None
    return hparams


def check_batch_methods(specs: list[MethodSpec]) -> None:
    """Methods that cannot take part in a batch run are named before anything loads."""
    bad = [m.name for m in specs if m.alg_name == "IKE"]
    if bad:
        raise BenchConfigError(f"batch.size: {', '.join(bad)} edits in context, one fact at a time, not by weights; "
                               f"leave it out of batch runs")


def host_batches(alg_name: Optional[str]) -> bool:
    """Whether EasyEdit's ``BaseEditor.batch_edit`` hands this method a list of requests."""
    from easyeditor.editors.batch_editor import BatchEditor

    return bool(BatchEditor.is_batchable_method(str(alg_name)))


def _light(stats: Any) -> Any:
    """Edit statistics without the per-step traces (also inside ``per_request``)."""
    if isinstance(stats, list):
        return [_light(s) for s in stats]
    if not isinstance(stats, dict):
        return stats
    out = {k: v for k, v in stats.items() if k not in BULKY_STATS}
    if "per_request" in out:
        out["per_request"] = _light(out["per_request"])
    return out


class BatchRun:
    """One batch of one method and source language on the sitting's model."""

    def __init__(self, sitting: Any, spec: MethodSpec, editor: Editor, source: str, records: list[Any]) -> None:
        self.s, self.spec, self.editor, self.source, self.records = sitting, spec, editor, source, records
        self.undo = Undo()
        self.current: Any = sitting.model
        self.in_one_call = spec.kind == "memla" or (spec.kind == "easyedit" and host_batches(spec.alg_name))

    def written(self) -> None:
        """The row is written (a batch keeps no state between sittings: it is one edit)."""

    def run(self) -> dict[str, Any]:
        """Edit the batch, score each fact on the edited model, undo and verify; the row."""
        s = self.s
        s.memory.start_window()
        refs = [s.unedited.get(s.model, s.tok, r) for r in self.records]
        before = s.ppl.before(s.model) if s.ppl is not None else None
        row = _row_head(s, self.spec, self.source, self.records)
        row["key"] = store.batch_key(len(self.records), self.spec.name, self.source, self.records[0].example_id)
        row.update(error=None, edit_stats={}, edit_s=0.0, eval_s=0.0,
                   applied="one call" if self.in_one_call else "one by one")
        if self.source not in s.requests:
            from .runner import build_requests

            s.requests[self.source] = build_requests(s.plan, self.source)
        edited = [r for r in self.records
                  if not (self.spec.needs_subject_slot and not r.fact(self.source).has_subject_slot)]
        flags = ModelFlags.of(s.model)
        finished = False
        try:
            if edited:
                for record in edited:
                    if s.hooks.before_edit is not None:
                        s.hooks.before_edit(self.spec, self.source, record)
                self._edit(row, [s.requests[self.source][str(r.example_id)] for r in edited])
            else:
                row["status"] = "skipped"
            row["statuses"] = [("error" if row["status"] == "error" else "ok") if r in edited else "skipped"
                               for r in self.records]
            row["scores"] = self._scores(row, refs)
            if before is not None:
                row["perplexity"] = {"before": before, "after": s.ppl.measure(self.current)}
            finished = True
        finally:
            row["restore"] = self._restore(row, flags, check=finished)
        row["counts"] = {k: row["statuses"].count(k) for k in ("ok", "error", "skipped")}
        row["edit_s_per_fact"] = row["edit_s"] / len(edited) if edited else None
        row["peak_rss_mib"] = s.memory.process_peak_mib()
        if s.memory.per_window:
            row["row_peak_rss_mib"] = s.memory.window_peak_mib()
        envinfo.release_freed_memory()
        return row

    def _edit(self, row: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        """Every request of the batch edited; a failure is recorded in ``row`` (run.on_edit_error=raise: raised)."""
        from .runner import _error_info, set_seed

        s = self.s
        set_seed(s.plan.seed)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with s.host_out():
                if self.in_one_call:
                    out_model, weights_copy, stats = self.editor.edit_many(s.model, s.tok, requests)
                    self._keep(out_model, weights_copy)
                    row["edit_stats"] = _light(stats)
                else:
                    row["edit_stats"] = {"per_request": []}
                    for request in requests:
                        out_model, weights_copy, stats = self.editor.edit(s.model, s.tok, request)
                        self._keep(out_model, weights_copy)
                        row["edit_stats"]["per_request"].append(_light(stats))
        except Exception as exc:  # the edits made so far are undone with the rest below
            if s.plan.on_edit_error == "raise":
                raise
            row.update(status="error", error=_error_info(exc), edit_stats=_light(self.editor.last_stats()))
        row["edit_s"] = time.perf_counter() - t0
        row["edit_cpu_s"] = time.process_time() - c0

    def _keep(self, out_model: Any, weights_copy: Any) -> None:
        self.undo.add(self.s.model, out_model, weights_copy)
        self.current = out_model if out_model is not None else self.s.model

    def _scores(self, row: dict[str, Any], refs: list[Any]) -> list[Any]:
        """Each fact on the model holding the whole batch; a failed batch scores as the unedited model."""
        s = self.s
        template = self.editor.prompt_template(s.template)
        gen = self.editor.prompt_template(s.gen_template) if s.gen_template is not None else None
        t0, out = time.perf_counter(), []
        for rec, ref, status in zip(self.records, refs, row["statuses"]):
            if status == "ok":
                out.append(jsonable(s._score({}, self.current, rec, ref, template, gen)))
            else:
                out.append(jsonable(ref.scores) if status == "error" else None)
        row["eval_s"] = time.perf_counter() - t0
        return out

    def _restore(self, row: dict[str, Any], flags: ModelFlags, check: bool) -> dict[str, Any]:
        return undo_and_verify(self.s, self.undo, row, flags, check, "batch")

__all__ = ["BatchRun", "MEMLA_BATCH_MODE", "batch_hparams", "check_batch_methods", "host_batches"]
