"""Sequential editing in the loop (``sequential.n``): N edits kept one after another, then undone.

A sequence is N consecutive selected records. Its edits go through the same apply function as
single edits, but nothing is restored between them, as EasyEdit's ``sequential_edit`` keeps each
edit's weights: MEMLA merges every update into the down-projections, ROME/MEMIT/FT write their
layers, LoRA trains on in the adapter its first edit made (flags are put back only after the sequence),
IKE's context keeps every fact edited so far (:class:`.ike_editor.IKEEditor`). Each edit is
scored right after it was applied (``steps[i].scores``), and every edit again after the last one
(``final.scores[i]``): retention is the second against the first. Locality comes with the scores.

Undo: the first original each editor hands back for a parameter is the parameter as loaded
(later ones already hold earlier edits), PEFT adapters are unloaded and callables run, newest
first; then the model is checked bit for bit against the load-time snapshot, as after a single
edit. A sequence is written as one row when it is complete; an interrupted sequence leaves no
row and is redone from its first edit by the next run (edits are not replayed from a midpoint).
MEMLA attributes on the model as the earlier edits left it, so a sequential run never reads or
writes the shared neuron cache (those attributions were made on the unedited model).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import envinfo, protocol, store
from .methods import Editor, jsonable
from .restore import ModelFlags, restore, verify_or_log
from .settings import MethodSpec

#: edit statistics too long to repeat N times in one row
BULKY_STATS = ("loss_trace", "p_new_trace", "demonstrations")


def sequence_hparams(spec: MethodSpec, hparams: Any) -> Any:
    """The hparams a sequence edits with: MEMLA without a neuron cache (attribution on the edited model)."""
    if spec.kind == "memla" and hparams is not None and getattr(hparams, "neuron_cache_dir", None):
        return hparams.replace(neuron_cache_dir=None)
    return hparams


@dataclass
class Undo:
    """What puts a model back after a sequence of edits."""

    originals: dict[str, Any] = field(default_factory=dict)  # first weights_copy entry per parameter
    callables: list[Callable[[], Any]] = field(default_factory=list)
    wrapper: Optional[Any] = None  # the first PEFT wrapper an edit returned

    def add(self, model: Any, out_model: Any, weights_copy: Any) -> None:
        if callable(weights_copy):
            self.callables.append(weights_copy)
        elif out_model is not None and out_model is not model and hasattr(out_model, "unload"):
            self.wrapper = self.wrapper if self.wrapper is not None else out_model
        else:
            for name, value in (weights_copy or {}).items():
                self.originals.setdefault(name, value)

    def run(self, model: Any, flags: ModelFlags) -> int:
        """Undo every edit of the sequence; returns how many restore steps ran."""
        import torch

        n = 0
        with torch.no_grad():
            for fn in reversed(self.callables):
                fn()
                n += 1
        if self.wrapper is not None:
            self.wrapper.unload()
            n += 1
        n += restore(model, self.originals)
        flags.put_back(model)
        return n


def undo_and_verify(sitting: Any, undo: Undo, row: dict[str, Any], flags: ModelFlags, check: bool,
                    unit: str) -> dict[str, Any]:
    """Undo a sequence or batch (``unit``) and prove it bit for bit (not checked while an exception unwinds)."""
    t0 = time.perf_counter()
    restored = undo.run(sitting.model, flags)
    if not check:
        return {"checked": 0, "restored": restored}
    where = f"{unit} {row['key']} (method {row['method']}, source {row['source']})"
    checked = verify_or_log(sitting.snapshot, sitting.model, where, sitting.plan.run_dir, row["key"])
    return {"checked": checked, "restored": restored, "s": time.perf_counter() - t0}


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (stats or {}).items() if k not in BULKY_STATS}


def _row_head(sitting: Any, spec: MethodSpec, source: str, records: list[Any]) -> dict[str, Any]:
    plan = sitting.plan
    return {
        "key": store.sequence_key(len(records), spec.name, source, records[0].example_id),
        "method": spec.name, "kind": spec.kind, "source": source, "n": len(records),
        "record_ids": [str(r.example_id) for r in records],
        "record_index": sitting.index_of[str(records[0].example_id)],
        "cfg_id": plan.method_ids[spec.name], "seed": plan.seed,
        "shard": f"{plan.shard[0]}/{plan.shard[1]}", "hardware": sitting.hardware, "status": "ok",
        "protocol": protocol.PROTOCOL, "code": sitting.code, "prompt_format": plan.prompt_format,
        "gen": {"max_new_tokens": plan.options.gen_max_new_tokens,
                "prompt_format": plan.options.gen_prompt_format or plan.prompt_format},
    }


class SequenceRun:
    """One sequence of one method and source language on the sitting's model."""

    def __init__(self, sitting: Any, spec: MethodSpec, editor: Editor, source: str, records: list[Any]) -> None:
        self.s, self.spec, self.editor, self.source, self.records = sitting, spec, editor, source, records
        self.undo = Undo()
        self.current: Any = sitting.model  # the model to score: the latest edit's output

    def run(self) -> dict[str, Any]:
        """Edit every record in order, score, rescore all after the last, undo and verify."""
        s = self.s
        s.memory.start_window()
        refs = [s.unedited.get(s.model, s.tok, r) for r in self.records]  # before any edit
        before = s.ppl.before(s.model) if s.ppl is not None else None
        row = _row_head(s, self.spec, self.source, self.records)
        if self.source not in s.requests:
            from .runner import build_requests

            s.requests[self.source] = build_requests(s.plan, self.source)
        flags = ModelFlags.of(s.model)
        self.editor.begin_sequence()
        finished = False
        try:
            row["steps"] = [self._step(i, rec, ref) for i, (rec, ref) in enumerate(zip(self.records, refs))]
            row["final"] = self._final(refs)
            if before is not None:
                row["perplexity"] = {"before": before, "after": s.ppl.measure(self.current)}
            finished = True
        finally:
            self.editor.end_sequence()
            row["restore"] = self._restore(row, flags, check=finished)
        for what in ("edit_s", "eval_s"):
            row[what] = sum(st.get(what) or 0.0 for st in row["steps"])
        row["counts"] = {k: sum(st["status"] == k for st in row["steps"]) for k in ("ok", "error", "skipped")}
        row["peak_rss_mib"] = s.memory.process_peak_mib()
        if s.memory.per_window:
            row["row_peak_rss_mib"] = s.memory.window_peak_mib()
        envinfo.release_freed_memory()
        return row

    def _templates(self) -> tuple[str, Optional[str]]:
        gen = self.editor.prompt_template(self.s.gen_template) if self.s.gen_template is not None else None
        return self.editor.prompt_template(self.s.template), gen

    def _step(self, i: int, record: Any, ref: Any) -> dict[str, Any]:
        """Edit ``record`` on top of the earlier edits and score it at once.

        Nothing is put back between edits, as in EasyEdit's sequential_edit: LoRA's second edit must
        find its adapter (``peft_config``) and the base weights it froze still frozen."""
        s, rid = self.s, str(record.example_id)
        step: dict[str, Any] = {"position": i, "record_id": rid, "status": "ok", "error": None, "scores": None,
                                "edit_stats": {}, "edit_s": 0.0, "eval_s": 0.0}
        if self.spec.needs_subject_slot and not record.fact(self.source).has_subject_slot:
            step.update(status="skipped", error={"type": "NoSubjectSlot", "message": f"the {self.source} question "
                                                 f"does not contain the subject verbatim"})
            return step
        if s.hooks.before_edit is not None:
            s.hooks.before_edit(self.spec, self.source, record)
        out_model, weights_copy = s._edit(step, self.editor, s.requests[self.source][rid])
        if step["status"] == "ok":
            self.undo.add(s.model, out_model, weights_copy)
            self.current = out_model if out_model is not None else s.model
            template, gen = self._templates()
            step["scores"] = jsonable(s._score(step, self.current, record, ref, template, gen))
        step["edit_stats"] = _stats(step["edit_stats"])
        return step

    def _final(self, refs: list[Any]) -> dict[str, Any]:
        """Every record scored on the model after the whole sequence."""
        template, gen = self._templates()
        t0, scores = time.perf_counter(), []
        for rec, ref in zip(self.records, refs):
            scratch: dict[str, Any] = {}
            scores.append(jsonable(self.s._score(scratch, self.current, rec, ref, template, gen)))
        return {"scores": scores, "eval_s": time.perf_counter() - t0}

    def _restore(self, row: dict[str, Any], flags: ModelFlags, check: bool) -> dict[str, Any]:
        return undo_and_verify(self.s, self.undo, row, flags, check, "sequence")


__all__ = ["BULKY_STATS", "SequenceRun", "Undo", "sequence_hparams", "undo_and_verify"]
