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
edit. A sequence is written as one row when it is complete. Until then its state is saved after
every edit (:mod:`.seq_state`), so an interrupted sequence goes on from its last finished edit in the
next run. LoRA's state is its adapter (PEFT config and weights) and which modules are in training mode
(the adapter's dropout trains the next edit only when on: :mod:`.seq_adapter`). One whose edits undo
themselves by a callable is redone from its first edit.
MEMLA attributes on the model as the earlier edits left it, so a sequential run never reads or
writes the shared neuron cache (those attributions were made on the unedited model).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import envinfo, protocol, store
from .methods import Editor, jsonable
from .restore import ModelFlags, restore, verify_or_log
from .seq_adapter import ADAPTER_PREFIX, ModuleModes, adapter_config, adapter_weights, attach_adapter
from .seq_state import SequenceState
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


def _identity(row: dict[str, Any]) -> dict[str, Any]:
    """What a saved sequence state must share with the sitting that goes on with it."""
    return {k: row[k] for k in ("key", "cfg_id", "seed", "record_ids", "protocol", "code", "prompt_format", "gen")}


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
        self.state: Optional[SequenceState] = None

    def run(self) -> dict[str, Any]:
        """Edit every record in order, score, rescore all after the last, undo and verify.

        Goes on from the saved state of an interrupted sitting where there is one."""
        s = self.s
        s.memory.start_window()
        refs = [s.unedited.get(s.model, s.tok, r) for r in self.records]  # before any edit
        row = _row_head(s, self.spec, self.source, self.records)
        self.state = SequenceState(s.plan.run_dir, row["key"], _identity(row))
        saved = self.state.load()
        if saved is not None:
            before = saved.get("perplexity_before")
        else:
            before = s.ppl.before(s.model) if s.ppl is not None else None
        if self.source not in s.requests:
            from .runner import build_requests

            s.requests[self.source] = build_requests(s.plan, self.source)
        flags = ModelFlags.of(s.model)
        self.editor.begin_sequence()
        finished = False
        steps: list[dict[str, Any]] = []
        final: dict[str, Any] = {"scores": [], "eval_s": 0.0}
        resumed_at: list[int] = []
        try:
            if saved is not None:
                steps, final, resumed_at = saved["steps"], saved["final"], saved["resumed_at"]
                resumed_at.append(len(steps) + len(final["scores"]))
                self._resume(saved)
            for i in range(len(steps), len(self.records)):
                steps.append(self._step(i, self.records[i], refs[i]))
                self._save(steps, final, before, resumed_at, weights=True)
            row["steps"] = steps
            row["final"] = self._final(refs, final, lambda: self._save(steps, final, before, resumed_at))
            if before is not None:
                row["perplexity"] = {"before": before, "after": s.ppl.measure(self.current)}
            finished = True
        finally:
            self.editor.end_sequence()
            row["restore"] = self._restore(row, flags, check=finished)
        if resumed_at:
            row["resumed_at"] = resumed_at  # edits (then final rescorings) where a later sitting went on
        for what in ("edit_s", "eval_s"):
            row[what] = sum(st.get(what) or 0.0 for st in row["steps"])
        row["counts"] = {k: sum(st["status"] == k for st in row["steps"]) for k in ("ok", "error", "skipped")}
        row["peak_rss_mib"] = s.memory.process_peak_mib()
        if s.memory.per_window:
            row["row_peak_rss_mib"] = s.memory.window_peak_mib()
        envinfo.release_freed_memory()
        return row

    def written(self) -> None:
        """The row is written: its saved state is no longer needed."""
        if self.state is not None:
            self.state.clear()

    def _resumable(self) -> Optional[dict[str, Any]]:
        """The editor's state when the sequence can be saved (its edits changed parameters, or trained a
        PEFT adapter), else None (also when an adapter is on the model but no edit handed its wrapper back,
        as after a LoRA edit that failed half-way: there is nothing to save it from)."""
        if self.undo.callables or not (self.current is self.s.model or self.current is self.undo.wrapper):
            return None
        if self.undo.wrapper is None and hasattr(self.s.model, "peft_config"):
            return None
        return self.editor.sequence_state()

    def _save(self, steps: list[dict[str, Any]], final: dict[str, Any], before: Any, resumed_at: list[int],
              weights: bool = False) -> None:
        editor_state = self._resumable()
        if editor_state is None or self.state is None:
            return
        model, values = self.s.model, None
        if weights:
            values = {name: model.get_parameter(name) for name in self.undo.originals}
            if self.undo.wrapper is not None:
                values.update({ADAPTER_PREFIX + k: v for k, v in adapter_weights(self.undo.wrapper).items()})
        self.state.save({"steps": steps, "final": final, "perplexity_before": before, "resumed_at": resumed_at,
                         "flags": dataclasses.asdict(ModelFlags.of(model)), "editor": editor_state,
                         "adapter": adapter_config(self.undo.wrapper) if self.undo.wrapper is not None else None,
                         "modes": ModuleModes.of(model).as_json()},
                        values)

    def _resume(self, saved: dict[str, Any]) -> None:
        """Put the saved edits into the loaded model: the parameters (their loaded values kept for the
        undo), a LoRA adapter with its trained weights, the model's flags and module modes as the edits
        left them, and the editor's state."""
        import torch

        assert self.state is not None
        model = self.s.model
        values = self.state.weights()
        adapter = {k[len(ADAPTER_PREFIX):]: values.pop(k) for k in list(values) if k.startswith(ADAPTER_PREFIX)}
        with torch.no_grad():
            for name, value in values.items():
                param = model.get_parameter(name)
                self.undo.originals.setdefault(name, param.detach().clone())
                param.copy_(value.to(device=param.device, dtype=param.dtype))
        self.current = model
        if saved["adapter"] is not None:
            self.undo.wrapper = self.current = attach_adapter(model, saved["adapter"], adapter)
        flags = ModelFlags(**saved["flags"])
        flags.put_back(model, keep_adapter=self.undo.wrapper is not None)
        ModuleModes.from_json(saved["modes"]).put_back(model, flags.checkpointing)
        self.editor.resume_sequence(saved["editor"])

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

    def _final(self, refs: list[Any], final: dict[str, Any], save: Callable[[], None]) -> dict[str, Any]:
        """Every record scored on the model after the whole sequence (going on after ``final``'s scores)."""
        template, gen = self._templates()
        for rec, ref in list(zip(self.records, refs))[len(final["scores"]):]:
            scratch: dict[str, Any] = {}
            t0 = time.perf_counter()
            final["scores"].append(jsonable(self.s._score(scratch, self.current, rec, ref, template, gen)))
            final["eval_s"] += time.perf_counter() - t0
            save()
        return final

    def _restore(self, row: dict[str, Any], flags: ModelFlags, check: bool) -> dict[str, Any]:
        return undo_and_verify(self.s, self.undo, row, flags, check, "sequence")


__all__ = ["BULKY_STATS", "SequenceRun", "Undo", "sequence_hparams", "undo_and_verify"]
