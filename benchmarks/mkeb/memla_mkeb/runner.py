"""The benchmark loop: edit once, evaluate every language, restore, verify, write a row.

Order of work is method-major (each method's editor and statistics are prepared once),
then source language, then record. One JSONL row per (method, source, record) is appended
and fsync'ed as soon as it is done; on start, rows already present in the run directory
are skipped, so an interrupted run resumes without losing or repeating work.

The unedited model is scored once per record (it does not depend on the source language
or the method) and cached in the run directory; every method's ``loc_acc`` is measured
against it and a failed edit is scored with it. What the run does is decided beforehand
(:mod:`.planning`); how a model is put back after an edit is :mod:`.restore`.
"""
from __future__ import annotations

import contextlib
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from memla_plugin.errors import RestoreMismatchError
from memla_plugin.prompt_format import prompt_template

from . import downstream, envinfo, pages, protocol, store
from .batch import BatchRun, batch_hparams
from .methods import Editor, build_hparams, jsonable, make_editor
from .planning import Plan, check_resume, plan_run, save_run_files
from .restore import ModelFlags, ParamSnapshot, undo, verify_or_log
from .sequential import SequenceRun, sequence_hparams
from .settings import BenchConfigError, MethodSpec


@dataclass
class Hooks:
    """Test seams: called after each row is written / before each edit."""

    after_row: Optional[Callable[[dict[str, Any]], None]] = None
    before_edit: Optional[Callable[[MethodSpec, str, Any], None]] = None


@dataclass
class RunSummary:
    run_dir: Path
    planned: int
    already_done: int
    written: int
    errors: int
    skipped: int
    restore_checks: int
    wall_s: float
    results_file: Path

    def count(self, row: dict[str, Any]) -> None:
        """Tally a written row."""
        self.written += 1
        self.errors += row["status"] == "error"
        self.skipped += row["status"] == "skipped"
        self.restore_checks += bool(row["restore"]["checked"])

    def count_sequence(self, row: dict[str, Any]) -> None:
        """Tally a written sequence row (its failed and skipped edits count one by one)."""
        self.written += 1
        self.errors += row["counts"]["error"]
        self.skipped += row["counts"]["skipped"]
        self.restore_checks += bool(row["restore"]["checked"])


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


_MODEL_CACHE: dict[tuple, tuple[Any, Any, Any]] = {}


def load_model_once(model_cfg: Any, restore_mode: str) -> tuple[Any, Any, ParamSnapshot]:
    """Load (and snapshot) the model; reused across Hydra multirun jobs in one process."""
    key = (str(model_cfg.get("name_or_path")), str(model_cfg.get("device")), str(model_cfg.get("dtype")), restore_mode)
    if key in _MODEL_CACHE:
        model, _, snap = _MODEL_CACHE[key]
        try:
            snap.verify(model, "cached model")
        except RestoreMismatchError:
            _MODEL_CACHE.clear()
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        from memla_plugin.models import load_model

        from memla_plugin.models.integrity import verify_loaded

        model, tok = load_model(model_cfg.get("name_or_path"), device=model_cfg.get("device") or "cpu",
                                dtype=model_cfg.get("dtype"))
        snap = ParamSnapshot(model, restore_mode)
        verify_loaded(_model_path(model_cfg), model, snap.digests)  # a converted cache's recorded digests
        _MODEL_CACHE[key] = (model, tok, snap)
    return _MODEL_CACHE[key]


def _sparse_embedding(model: Any) -> Optional[Any]:
    """The input embedding table, unless the LM head shares it (then every forward reads all of it)."""
    get_in = getattr(model, "get_input_embeddings", None)
    emb = get_in() if get_in is not None else None
    weight = getattr(emb, "weight", None)
    if weight is None:
        return None
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if get_out is not None else None
    head_w = getattr(head, "weight", None)
    if head_w is not None and head_w.data_ptr() == weight.data_ptr():
        return None
    return weight


def _model_path(model_cfg: Any) -> Optional[str]:
    """The directory or hub id the model came from ("default" -> the converted cache dir)."""
    name = model_cfg.get("name_or_path")
    from memla_plugin.models import default_model_dir, is_default_model

    if is_default_model(name):
        return str(default_model_dir())
    return str(name) if name is not None else None


def build_requests(plan: Plan, source: str) -> dict[str, dict[str, Any]]:
    """EasyEdit request dicts (as MKEBDataset yields them) for this shard's records, edited in ``source``."""
    from memla_plugin.mkeb import MKEBDataset

    dataset = MKEBDataset(list(plan.records), edit_lang=source)
    return {str(req["case_id"]): req for req in dataset}


def _error_info(exc: BaseException) -> dict[str, str]:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return {"type": type(exc).__name__, "message": msg[:500]}


def _gen_template(tok: Any, plan: Plan) -> Optional[str]:
    """The template the generation metrics ask under, when eval.gen_prompt_format sets one."""
    fmt = plan.options.gen_prompt_format
    return prompt_template(tok, fmt) if fmt is not None else None


class _Unedited:
    """Unedited references per record: from the run dir's cache, else computed and cached."""

    def __init__(self, plan: Plan, writer: store.JsonlWriter) -> None:
        self.plan = plan
        self.writer = writer
        self.cached = store.load_cache(plan.run_dir)
        for rid, row in self.cached.items():
            if row.get("base_id") != plan.base_id:
                raise BenchConfigError(
                    f"run dir {plan.run_dir} holds unedited scores of record {rid} made with other settings "
                    f"(model, data, eval languages or seed); use a new run_dir"
                )

    def get(self, model: Any, tok: Any, record: Any) -> Any:
        from memla_plugin.mkeb.metrics import UneditedReference, unedited_reference

        rid = str(record.example_id)
        row = self.cached.get(rid)
        if row is None:
            opts = self.plan.options
            set_seed(self.plan.seed)
            t0, c0 = time.perf_counter(), time.process_time()
            ref = unedited_reference(model, tok, record, self.plan.eval_langs, device=self.plan.device,
                                     batch_size=opts.batch_size, max_new_tokens=opts.max_new_tokens,
                                     prompt_template=prompt_template(tok, self.plan.prompt_format),
                                     gen_max_new_tokens=opts.gen_max_new_tokens,
                                     gen_template=_gen_template(tok, self.plan))
            row = {"record_id": rid, "base_id": self.plan.base_id, "eval_s": time.perf_counter() - t0,
                   "eval_cpu_s": time.process_time() - c0, **jsonable(ref.to_json())}
            self.writer.append(row)
            self.cached[rid] = row
        return UneditedReference.from_json(row)


class _Sitting:
    """One run's open state (model, snapshot, writers, memory meter) and the work on one row."""

    def __init__(self, plan: Plan, model: Any, tok: Any, snapshot: ParamSnapshot, hooks: Hooks,
                 env: dict[str, Any], cache: store.JsonlWriter, host_log: Any) -> None:
        self.plan, self.model, self.tok, self.snapshot, self.hooks = plan, model, tok, snapshot, hooks
        self.hardware = env["hardware"]
        self.code = protocol.code_commit()  # read once: the code this process runs
        self.template = prompt_template(tok, plan.prompt_format)  # how every prompt is put to the model
        self.gen_template = _gen_template(tok, plan)  # how the generation metrics ask (None: as self.template)
        self.unedited = _Unedited(plan, cache)
        self.host_log = host_log
        self.requests: dict[str, dict[str, dict[str, Any]]] = {}
        self.hparams: dict[str, Any] = {}  # method name -> hparams built before the model loaded
        self.memory = envinfo.PeakMemory()
        self.index_of = {rid: i for i, rid in enumerate(plan.all_ids)}
        self.ppl = downstream.probe_for(plan, tok)  # held-out perplexity (None: perplexity.enabled false)
        self.embedding = _sparse_embedding(model) if plan.drop_embedding_pages else None
        if self.embedding is not None:  # the load-time snapshot read all of it
            pages.drop_file_pages(self.embedding)

    def host_out(self) -> Any:
        """What editors print (EasyEdit prints every step) goes to the run dir's log, not over the bars."""
        return contextlib.redirect_stdout(self.host_log) if self.host_log is not None else contextlib.nullcontext()

    def editor(self, spec: MethodSpec) -> Editor:
        with self.host_out():
            return make_editor(spec, self.model, self.tok, self.hparams[spec.name],
                               _model_path(self.plan.cfg.model) if spec.kind == "easyedit" else None,
                               prompt_format=self.plan.prompt_format, exclude_ids=self.plan.all_ids)

    def run_row(self, spec: MethodSpec, editor: Editor, source: str, record: Any) -> dict[str, Any]:
        """Edit ``record`` in ``source`` with ``editor``, score every language, restore and verify."""
        rid = str(record.example_id)
        self.memory.start_window()
        ref = self.unedited.get(self.model, self.tok, record)
        before = self.ppl.before(self.model) if self.ppl is not None else None  # the model is as loaded here
        row: dict[str, Any] = {
            "key": store.row_key(spec.name, source, rid), "method": spec.name, "kind": spec.kind,
            "source": source, "record_id": rid, "record_index": self.index_of[rid],
            "cfg_id": self.plan.method_ids[spec.name], "seed": self.plan.seed,
            "shard": f"{self.plan.shard[0]}/{self.plan.shard[1]}", "hardware": self.hardware,
            "status": "ok", "error": None, "scores": None, "edit_stats": {},
            "edit_s": 0.0, "eval_s": 0.0, "restore": {"checked": 0, "restored": 0},
            "protocol": protocol.PROTOCOL, "code": self.code,
        }
        if spec.grid_point is not None:  # a tuning-grid point (memla_mkeb.grid, memla_mkeb.select)
            row["grid_point"] = dict(spec.grid_point)
        row["prompt_format"] = self.plan.prompt_format
        row["gen"] = {"max_new_tokens": self.plan.options.gen_max_new_tokens,
                      "prompt_format": self.plan.options.gen_prompt_format or self.plan.prompt_format}
        if before is not None:  # replaced by the edited model's below; a skipped edit has none
            row["perplexity"] = {"before": before, "after": before if not editor.edits else None}
        if not editor.edits:
            row["scores"] = ref.scores
        elif spec.needs_subject_slot and not record.fact(source).has_subject_slot:
            row["status"] = "skipped"
            row["error"] = {"type": "NoSubjectSlot",
                            "message": f"the {source} question does not contain the subject verbatim; "
                                       f"{spec.name} needs the subject position"}
        else:
            self._edit_score_restore(row, spec, editor, source, record, ref)
        row["scores"] = jsonable(row["scores"])
        row["peak_rss_mib"] = self.memory.process_peak_mib()
        if self.memory.per_window:  # this row's own peak (edit, evaluation, restore)
            row["row_peak_rss_mib"] = self.memory.window_peak_mib()
            row["row_start_rss_mib"] = self.memory.window_start_mib
        envinfo.release_freed_memory()
        return row

    def _edit_score_restore(self, row: dict[str, Any], spec: MethodSpec, editor: Editor, source: str,
                            record: Any, ref: Any) -> None:
        """The edit, the scores of the edited model (or the unedited ones if it failed), the restore."""
        if source not in self.requests:
            self.requests[source] = build_requests(self.plan, source)
        request = self.requests[source][row["record_id"]]
        if self.hooks.before_edit is not None:
            self.hooks.before_edit(spec, source, record)
        out_model, weights_copy = None, {}
        flags = ModelFlags.of(self.model)
        try:
            out_model, weights_copy = self._edit(row, editor, request)
            template = editor.prompt_template(self.template)  # IKE: its demonstrations come first
            gen = editor.prompt_template(self.gen_template) if self.gen_template is not None else None
            row["scores"] = (self._score(row, out_model, record, ref, template, gen) if row["status"] == "ok"
                             else ref.scores)
            if self.ppl is not None:
                row["perplexity"] = self.ppl.row_field(self.model, out_model if row["status"] == "ok" else None)
        finally:
            row["restore"] = self._restore(row, out_model, weights_copy, flags)

    def _edit(self, row: dict[str, Any], editor: Editor, request: dict[str, Any]) -> tuple[Any, Any]:
        """Run the editor; a failure is recorded in ``row`` (or raised, with run.on_edit_error=raise)."""
        out_model, weights_copy = None, {}
        set_seed(self.plan.seed)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with self.host_out():
                out_model, weights_copy, row["edit_stats"] = editor.edit(self.model, self.tok, request)
        except Exception as exc:  # a failed edit must leave the model unchanged
            if self.plan.on_edit_error == "raise":
                raise
            row.update(status="error", error=_error_info(exc), edit_stats=editor.last_stats())
        row["edit_s"] = time.perf_counter() - t0
        row["edit_cpu_s"] = time.process_time() - c0
        return out_model, weights_copy

    def _score(self, row: dict[str, Any], out_model: Any, record: Any, ref: Any, template: str,
               gen_template: Optional[str] = None) -> Any:
        from memla_plugin.mkeb.metrics import score_record

        set_seed(self.plan.seed)
        t0, c0 = time.perf_counter(), time.process_time()
        scores = score_record(out_model, self.tok, record, self.plan.eval_langs, device=self.plan.device,
                              batch_size=self.plan.options.batch_size,
                              max_new_tokens=self.plan.options.max_new_tokens, reference=ref,
                              prompt_template=template, gen_template=gen_template,
                              gen_max_new_tokens=self.plan.options.gen_max_new_tokens)
        row["eval_s"] = time.perf_counter() - t0
        row["eval_cpu_s"] = time.process_time() - c0
        return scores

    def _restore(self, row: dict[str, Any], out_model: Any, weights_copy: Any, flags: ModelFlags) -> dict[str, Any]:
        """Undo the edit and prove it bit for bit; a mismatch is logged in the run dir and stops the run."""
        t0 = time.perf_counter()
        restored = undo(self.model, out_model, weights_copy, flags)
        where = f"record {row['record_id']} (method {row['method']}, source {row['source']})"
        checked = verify_or_log(self.snapshot, self.model, where, self.plan.run_dir, row["key"])
        if self.embedding is not None:  # the check read all of it; a forward reads a few rows
            pages.drop_file_pages(self.embedding)
        return {"checked": checked, "restored": restored, "s": time.perf_counter() - t0}


def run_benchmark(
    cfg: Any,
    *,
    model: Any = None,
    tok: Any = None,
    hooks: Optional[Hooks] = None,
) -> RunSummary:
    """Run the plan of ``cfg``. ``model``/``tok`` may be injected (tests, notebooks).

    Settings, data and every method's hparams are checked before the run dir is touched; the
    run dir's lock is then held from the first read of its rows to the last row written.
    """
    t_start = time.perf_counter()
    plan = plan_run(cfg)
    hparams = {m.name: build_hparams(m, plan.device, plan.options.neuron_dir, plan.prompt_format) for m in plan.methods}
    if plan.sequential_n is not None:
        hparams = {m.name: sequence_hparams(m, hparams[m.name]) for m in plan.methods}
    if plan.batch_n is not None:
        hparams = {m.name: batch_hparams(m, hparams[m.name]) for m in plan.methods}
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    with store.run_lock(plan.run_dir, plan.tag):
        return _run_locked(plan, hparams, model, tok, hooks, t_start)


def _run_locked(plan: Plan, hparams: dict[str, Any], model: Any, tok: Any, hooks: Optional[Hooks],
                t_start: float) -> RunSummary:
    """What :func:`run_benchmark` does once it holds the run dir: resume checks, model, rows."""
    cfg = plan.cfg
    done = store.done_keys(plan.run_dir)
    done_seq = {**store.done_sequences(plan.run_dir), **store.done_sequences(plan.run_dir, store.BATCHES_GLOB)}
    check_resume(plan, {**done, **done_seq}, store.load_cache(plan.run_dir))
    todo = plan.pending(done) + plan.pending_sequences(done_seq) + plan.pending_batches(done_seq)
    total = len(plan.keys()) + len(plan.sequence_keys()) + len(plan.batch_keys())
    summary = RunSummary(plan.run_dir, total, total - len(todo), 0, 0, 0, 0, 0.0,
                         plan.run_dir / f"results{plan.tag}.jsonl")
    say = print if plan.options.progress else (lambda *a, **k: None)
    if not todo:
        say(f"memla-mkeb: nothing to do, all {total} rows are in {plan.run_dir}", file=sys.stderr)
        summary.wall_s = time.perf_counter() - t_start
        return summary

    import torch

    if plan.options.threads:
        torch.set_num_threads(plan.options.threads)
    if plan.mmap_threshold is not None and not envinfo.set_malloc_mmap_threshold(plan.mmap_threshold):
        say(f"memla-mkeb: run.malloc_mmap_threshold={plan.mmap_threshold} ignored (not glibc)", file=sys.stderr)
    if model is None:
        if not plan.options.progress:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        model, tok, snapshot = load_model_once(cfg.model, plan.restore_mode)
    else:
        snapshot = ParamSnapshot(model, plan.restore_mode)
    try:
        _run(plan, model, tok, snapshot, hooks or Hooks(), todo, summary, say, hparams)
    except BaseException:
        _MODEL_CACHE.clear()  # the model may be left edited; the next run in this process reloads it
        raise
    summary.wall_s = time.perf_counter() - t_start
    say(f"memla-mkeb: wrote {summary.written} rows ({summary.errors} failed edits, {summary.skipped} skipped, "
        f"{summary.restore_checks} restore checks passed) in {summary.wall_s:.1f} s -> {summary.results_file}",
        file=sys.stderr)
    return summary


def _run(plan: Plan, model: Any, tok: Any, snapshot: ParamSnapshot, hooks: Hooks, todo: list,
         summary: RunSummary, say: Callable[..., None], hparams: dict[str, Any]) -> None:
    """Method by method: prepare its editor once, then one row per (source, record) still to do."""
    from tqdm.auto import tqdm

    env = envinfo.collect(plan.device, plan.seed)
    save_run_files(plan, env)
    say(f"memla-mkeb: {len(todo)} of {summary.planned} rows to do -> {summary.results_file}", file=sys.stderr)
    bar = tqdm(total=summary.planned, initial=summary.already_done, unit="edit", dynamic_ncols=True,
               file=sys.stderr, disable=not plan.options.progress, smoothing=0.1)
    host_log = (open(plan.run_dir / f"host_output{plan.tag}.log", "a", encoding="utf-8")
                if plan.options.host_output == "log" else None)
    with store.JsonlWriter(summary.results_file) as out, \
            store.JsonlWriter(plan.run_dir / f"unedited_cache{plan.tag}.jsonl") as cache, \
            (host_log if host_log is not None else contextlib.nullcontext()):
        sitting = _Sitting(plan, model, tok, snapshot, hooks, env, cache, host_log)
        sitting.hparams = hparams
        seq_writer: list[store.JsonlWriter] = []

        def seq_out() -> store.JsonlWriter:
            """sequences*.jsonl (batches*.jsonl), opened (and locked) when the first sequence (batch) row is written."""
            if not seq_writer:
                name = "batches" if plan.batch_n is not None else "sequences"
                seq_writer.append(store.JsonlWriter(plan.run_dir / f"{name}{plan.tag}.jsonl").open())
            return seq_writer[0]

        try:
            for spec in plan.methods:
                work = [(s, r) for (m, s, r) in todo if m is spec]
                if not work:
                    continue
                bar.set_description(f"{spec.name}: preparing")
                editor = sitting.editor(spec)
                for source, work_item in work:
                    if isinstance(work_item, list):  # a sequence (sequential.n) or a batch (batch.size) of records
                        what = "batch" if plan.batch_n is not None else "sequence"
                        bar.set_description(f"{spec.name} {source} {what} from #{work_item[0].example_id}")
                        group = BatchRun if plan.batch_n is not None else SequenceRun
                        group_run = group(sitting, spec, editor, source, work_item)
                        row = group_run.run()
                        seq_out().append(row)
                        group_run.written()
                        summary.count_sequence(row)
                    else:
                        bar.set_description(f"{spec.name} {source} #{work_item.example_id}")
                        row = sitting.run_row(spec, editor, source, work_item)
                        out.append(row)
                        summary.count(row)
                    bar.update(1)
                    if hooks.after_row is not None:
                        hooks.after_row(row)
        finally:
            bar.close()
            for w in seq_writer:
                w.close()


__all__ = ["Hooks", "Plan", "RunSummary", "build_requests", "plan_run", "run_benchmark", "set_seed"]
