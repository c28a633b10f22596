"""The benchmark loop: edit once, evaluate every language, restore, verify, write a row.

Order of work is method-major (each method's editor and statistics are prepared once),
then source language, then record. One JSONL row per (method, source, record) is appended
and fsync'ed as soon as it is done; on start, rows already present in the run directory
are skipped, so an interrupted run resumes without losing or repeating work.

The unedited model is scored once per record (it does not depend on the source language
or the method) and cached in the run directory; every method's ``loc_acc`` is measured
against it and a failed edit is scored with it.
"""
from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from memla_plugin.errors import RestoreMismatchError

from . import envinfo, pages, store
from .methods import Editor, jsonable, make_editor
from .restore import ParamSnapshot, restore
from .settings import (
    MKEB_LANGS,
    BenchConfigError,
    MethodSpec,
    check_langs,
    check_limit,
    check_host_output,
    check_drop_embedding_pages,
    check_mmap_threshold,
    check_on_edit_error,
    check_restore_mode,
    check_shard,
    data_paths,
    file_sha256,
    resolve_methods,
    resolve_run_dir,
    shard_slice,
    shard_tag,
    stable_hash,
)

ROW_VERSION = 1


@dataclass
class Hooks:
    """Test seams: called after each row is written / before each edit."""

    after_row: Optional[Callable[[dict[str, Any]], None]] = None
    before_edit: Optional[Callable[[MethodSpec, str, Any], None]] = None


@dataclass
class Plan:
    """Everything a run will do, derived from the config and checked before any model loads."""

    cfg: Any
    run_dir: Path
    tag: str
    methods: list[MethodSpec]
    sources: list[str]
    eval_langs: list[str]
    records: list[Any]
    all_ids: list[str]
    data_path: Path
    ids: Optional[str]
    shard: tuple[int, int, str]
    seed: int
    device: str
    restore_mode: str
    on_edit_error: str
    mmap_threshold: Optional[int] = None  # run.malloc_mmap_threshold (None: glibc's own)
    drop_embedding_pages: bool = True  # run.drop_embedding_pages
    base_id: str = ""
    method_ids: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # what the ids hash, for readable mismatches

    def keys(self) -> list[tuple[MethodSpec, str, Any]]:
        return [(m, s, r) for m in self.methods for s in self.sources for r in self.records]


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


def _hparams_sha(spec: MethodSpec) -> Optional[str]:
    if spec.hparams is None:
        return None
    path = Path(spec.hparams)
    if not path.is_file():
        raise BenchConfigError(
            f"hparams file for method {spec.name!r} not found: {path} "
            f"(set catalog.{spec.name}.hparams=FILE or model.hparams_name)"
        )
    return file_sha256(path)[:16]


def plan_run(cfg: Any) -> Plan:
    """Validate ``cfg`` and select the records this process runs. Raises BenchConfigError."""
    methods = resolve_methods(cfg)
    sources = check_langs(cfg.get("source_langs"), "source_langs")
    eval_raw = cfg.get("eval_langs")
    eval_langs = list(MKEB_LANGS) if eval_raw is None else check_langs(eval_raw, "eval_langs")
    shard = check_shard(cfg)
    limit = check_limit(cfg)
    data_path, ids = data_paths(cfg)
    restore_mode = check_restore_mode(cfg)
    on_edit_error = check_on_edit_error(cfg)
    check_host_output(cfg)
    mmap_threshold = check_mmap_threshold(cfg)
    drop_embedding_pages = check_drop_embedding_pages(cfg)
    seed = int(cfg.get("seed", 42))
    device = str(cfg.model.get("device") or "cpu")
    hp_shas = {m.name: _hparams_sha(m) for m in methods}

    from memla_plugin.mkeb.loader import load_mkeb

    records = load_mkeb(data_path, ids)
    need = sorted(set(eval_langs) | set(sources), key=MKEB_LANGS.index)
    have = set(records[0].langs) if records else set()
    for rec in records:
        have &= set(rec.langs)
    lacking = [lang for lang in need if lang not in have]
    if lacking:
        raise BenchConfigError(
            f"language {', '.join(repr(x) for x in lacking)} (source_langs/eval_langs) not in every record of "
            f"{data_path}; the data has {' '.join(sorted(have, key=lambda x: (x not in MKEB_LANGS, x)))}"
        )
    if limit is not None:
        records = records[:limit]
    if not records:
        raise BenchConfigError(f"no records selected from {data_path} (data.ids={ids}, data.limit={limit})")
    all_ids = [str(r.example_id) for r in records]
    mine = shard_slice(records, *shard)

    data_sha = file_sha256(data_path)[:16]
    eval_cfg = cfg.get("eval") or {}
    base = {
        "model": {"name_or_path": str(cfg.model.get("name_or_path")), "dtype": cfg.model.get("dtype")},
        "data_sha256": data_sha,
        "eval_langs": eval_langs,
        "max_new_tokens": eval_cfg.get("max_new_tokens"),
        "seed": seed,
        "row_version": ROW_VERSION,
    }
    base_id = stable_hash(base)
    method_settings = {m.name: {**m.to_json(), "hparams": hp_shas[m.name]} for m in methods}
    method_ids = {m.name: stable_hash({"base": base_id, "method": method_settings[m.name]}) for m in methods}
    return Plan(
        cfg=cfg,
        run_dir=resolve_run_dir(cfg),
        tag=shard_tag(shard[0], shard[1]),
        methods=methods,
        sources=sources,
        eval_langs=eval_langs,
        records=mine,
        all_ids=all_ids,
        data_path=data_path,
        ids=ids,
        shard=shard,
        seed=seed,
        device=device,
        restore_mode=restore_mode,
        on_edit_error=on_edit_error,
        mmap_threshold=mmap_threshold,
        drop_embedding_pages=drop_embedding_pages,
        base_id=base_id,
        method_ids=method_ids,
        settings={"base": base, "methods": method_settings},
    )


# --------------------------------------------------------------------------- helpers


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

        model, tok = load_model(model_cfg.get("name_or_path"), device=model_cfg.get("device") or "cpu",
                                dtype=model_cfg.get("dtype"))
        _MODEL_CACHE[key] = (model, tok, ParamSnapshot(model, restore_mode))
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
    from memla_plugin.models import is_default_model

    if is_default_model(name):
        from memla_plugin.models import default_model_dir

        return str(default_model_dir())
    return str(name) if name is not None else None


def build_requests(plan: Plan, source: str) -> dict[str, dict[str, Any]]:
    """EasyEdit request dicts (CONTRACTS format) for this shard's records, edited in ``source``."""
    from memla_plugin.mkeb import MKEBDataset

    dataset = MKEBDataset(list(plan.records), edit_lang=source)
    return {str(req["case_id"]): req for req in dataset}


def _error_info(exc: BaseException) -> dict[str, str]:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return {"type": type(exc).__name__, "message": msg[:500]}


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def save_run_files(plan: Plan, env: dict[str, Any]) -> None:
    """Resolved config, environment and a line in sittings.jsonl for this start."""
    from omegaconf import OmegaConf

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    cfg_yaml = OmegaConf.to_yaml(plan.cfg, resolve=True) if OmegaConf.is_config(plan.cfg) else json.dumps(plan.cfg)
    (plan.run_dir / f"config{plan.tag}.yaml").write_text(cfg_yaml, encoding="utf-8")
    meta = {
        "model": {"name": str(plan.cfg.model.get("name")), "name_or_path": str(plan.cfg.model.get("name_or_path")),
                  "dtype": plan.cfg.model.get("dtype"), "device": plan.device},
        "base_id": plan.base_id,
        "method_ids": plan.method_ids,
        "settings": plan.settings,
        "methods": [m.to_json() for m in plan.methods],
        "sources": plan.sources,
        "eval_langs": plan.eval_langs,
        "data_path": str(plan.data_path),
        "data_ids": plan.ids,
        "selected_ids": plan.all_ids,
        "shard": {"index": plan.shard[0], "count": plan.shard[1], "mode": plan.shard[2]},
        "shard_ids": [str(r.example_id) for r in plan.records],
        "seed": plan.seed,
    }
    try:
        from memla_plugin.mkeb.loader import read_meta

        meta["data_meta"] = read_meta(plan.data_path)
    except Exception:  # the sidecar is optional information
        meta["data_meta"] = {}
    _write_json(plan.run_dir / f"plan{plan.tag}.json", meta)
    _write_json(plan.run_dir / f"env{plan.tag}.json", env)
    with store.JsonlWriter(plan.run_dir / "sittings.jsonl", wait=120) as w:
        w.append({"shard": plan.tag or ".", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "env": env,
                  "argv": sys.argv[1:]})


def check_resume(plan: Plan, done: dict[str, dict[str, Any]]) -> None:
    """Refuse to mix rows made with other settings into this run dir."""
    by_method = {m.name: m for m in plan.methods}
    for row in done.values():
        name = row.get("method")
        if name in by_method and row.get("cfg_id") != plan.method_ids[name]:
            raise BenchConfigError(
                f"run dir {plan.run_dir} already has rows for method {name!r} made with other settings "
                f"({_what_changed(plan, name, row.get('cfg_id'))}); use a new run_dir or restore those settings"
            )


def _what_changed(plan: Plan, method: str, old_id: Any) -> str:
    """Name the settings that differ from the run that wrote ``old_id`` (from its plan file)."""
    for path in sorted(plan.run_dir.glob("plan*.json")):
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (old.get("method_ids") or {}).get(method) != old_id or "settings" not in old:
            continue
        before = {**{f"{k}": v for k, v in old["settings"]["base"].items()},
                  **{f"{method}.{k}": v for k, v in old["settings"]["methods"][method].items()}}
        now = {**{f"{k}": v for k, v in plan.settings["base"].items()},
               **{f"{method}.{k}": v for k, v in plan.settings["methods"][method].items()}}
        diffs = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                 if before.get(k) != now.get(k)]
        if diffs:
            hint = " (the hparams value is the file's sha256 prefix)" if any(".hparams:" in d for d in diffs) else ""
            return "; ".join(diffs) + hint
    return "model, data, eval languages, seed or the method's hparams differ"


# --------------------------------------------------------------------------- the loop


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
        self.computed = 0

    def get(self, model: Any, tok: Any, record: Any) -> Any:
        from memla_plugin.mkeb.metrics import UneditedReference, unedited_reference

        rid = str(record.example_id)
        row = self.cached.get(rid)
        if row is None:
            eval_cfg = self.plan.cfg.get("eval") or {}
            set_seed(self.plan.seed)
            t0, c0 = time.perf_counter(), time.process_time()
            ref = unedited_reference(
                model, tok, record, self.plan.eval_langs, device=self.plan.device,
                batch_size=int(eval_cfg.get("batch_size") or 16), max_new_tokens=eval_cfg.get("max_new_tokens"),
            )
            row = {"record_id": rid, "base_id": self.plan.base_id, "eval_s": time.perf_counter() - t0,
                   "eval_cpu_s": time.process_time() - c0,
                   **jsonable(ref.to_json())}
            self.writer.append(row)
            self.cached[rid] = row
            self.computed += 1
        return UneditedReference.from_json(row)


@dataclass
class _ModelFlags:
    """Non-parameter state some host editors change, put back after every edit: EasyEdit's LoRA
    turns on gradient checkpointing, input grads and ``use_cache=False``; its ROME and MEMIT
    switch ``requires_grad`` off on every parameter (MEND, run after them, then has no gradient)."""

    use_cache: Any
    checkpointing: bool
    requires_grad: dict[str, bool]

    @classmethod
    def of(cls, model: Any) -> "_ModelFlags":
        return cls(getattr(getattr(model, "config", None), "use_cache", None),
                   bool(getattr(model, "is_gradient_checkpointing", False)),
                   {name: p.requires_grad for name, p in model.named_parameters()})

    def put_back(self, model: Any) -> None:
        for name, p in model.named_parameters():
            flag = self.requires_grad.get(name)
            if flag is not None and p.requires_grad != flag:
                p.requires_grad_(flag)
        if getattr(model, "config", None) is not None and self.use_cache is not None:
            model.config.use_cache = self.use_cache
        if not self.checkpointing and getattr(model, "is_gradient_checkpointing", False):
            model.gradient_checkpointing_disable()
        if getattr(model, "_require_grads_hook", None) is not None and hasattr(model, "disable_input_require_grads"):
            model.disable_input_require_grads()
        if hasattr(model, "peft_config"):
            del model.peft_config
        model.eval()


def _undo(model: Any, out_model: Any, weights_copy: Any, flags: _ModelFlags) -> int:
    """Undo an edit as EasyEdit's restore_after_edit does: a callable restores itself, a PEFT
    wrapper is unloaded, otherwise the returned originals are copied back."""
    n = 0
    if callable(weights_copy):
        import torch

        with torch.no_grad():
            weights_copy()
        n = 1
    elif out_model is not None and out_model is not model and hasattr(out_model, "unload"):
        out_model.unload()
        n = 1
    else:
        n = restore(model, weights_copy)
    flags.put_back(model)
    return n


def run_benchmark(
    cfg: Any,
    *,
    model: Any = None,
    tok: Any = None,
    hooks: Optional[Hooks] = None,
) -> RunSummary:
    """Run the plan of ``cfg``. ``model``/``tok`` may be injected (tests, notebooks)."""
    t_start = time.perf_counter()
    hooks = hooks or Hooks()
    plan = plan_run(cfg)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    results_path = plan.run_dir / f"results{plan.tag}.jsonl"
    done = store.done_keys(plan.run_dir)
    check_resume(plan, done)
    todo = [(m, s, r) for (m, s, r) in plan.keys() if store.row_key(m.name, s, r.example_id) not in done]
    total = len(plan.keys())
    summary = RunSummary(plan.run_dir, total, total - len(todo), 0, 0, 0, 0, 0.0, results_path)
    run_cfg = cfg.get("run") or {}
    say = print if run_cfg.get("progress", True) else (lambda *a, **k: None)
    if not todo:
        say(f"memla-mkeb: nothing to do, all {total} rows are in {plan.run_dir}", file=sys.stderr)
        summary.wall_s = time.perf_counter() - t_start
        return summary

    import torch

    threads = run_cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    if plan.mmap_threshold is not None and not envinfo.set_malloc_mmap_threshold(plan.mmap_threshold):
        say(f"memla-mkeb: run.malloc_mmap_threshold={plan.mmap_threshold} ignored (not glibc)", file=sys.stderr)
    if model is None:
        if not run_cfg.get("progress", True):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        model, tok, snapshot = load_model_once(cfg.model, plan.restore_mode)
    else:
        snapshot = ParamSnapshot(model, plan.restore_mode)
    try:
        return _run(plan, cfg, model, tok, snapshot, hooks, todo, summary, say, t_start)
    except BaseException:
        _MODEL_CACHE.clear()  # the model may be left edited; the next run in this process reloads it
        raise


def _run(plan: Plan, cfg: Any, model: Any, tok: Any, snapshot: ParamSnapshot, hooks: Hooks, todo: list,
         summary: RunSummary, say: Callable[..., None], t_start: float) -> RunSummary:
    run_cfg = cfg.get("run") or {}
    total = summary.planned
    results_path = summary.results_file
    env = envinfo.collect(plan.device, plan.seed)
    save_run_files(plan, env)
    eval_cfg = cfg.get("eval") or {}
    batch_size = int(eval_cfg.get("batch_size") or 16)
    max_new = eval_cfg.get("max_new_tokens")
    shard_txt = f"{plan.shard[0]}/{plan.shard[1]}"
    index_of = {rid: i for i, rid in enumerate(plan.all_ids)}

    from memla_plugin.mkeb.metrics import score_record
    from tqdm.auto import tqdm

    say(f"memla-mkeb: {len(todo)} of {total} rows to do -> {results_path}", file=sys.stderr)
    bar = tqdm(total=total, initial=summary.already_done, unit="edit", dynamic_ncols=True, file=sys.stderr,
               disable=not run_cfg.get("progress", True), smoothing=0.1)
    cache_path = plan.run_dir / f"unedited_cache{plan.tag}.jsonl"
    neuron_dir = None
    if run_cfg.get("share_neurons", True):
        neuron_dir = str(run_cfg.get("neuron_dir") or (plan.run_dir / "neurons"))
    host_mode = str(run_cfg.get("host_output", "log"))
    host_log = open(plan.run_dir / f"host_output{plan.tag}.log", "a", encoding="utf-8") if host_mode == "log" else None

    def host_out() -> Any:
        """What editors print (EasyEdit prints every step) goes to the run dir's log, not over the bars."""
        return contextlib.redirect_stdout(host_log) if host_log is not None else contextlib.nullcontext()

    with store.JsonlWriter(results_path) as out, store.JsonlWriter(cache_path) as cache_w, \
            (host_log if host_log is not None else contextlib.nullcontext()):
        unedited = _Unedited(plan, cache_w)
        requests: dict[str, dict[str, dict[str, Any]]] = {}
        memory = envinfo.PeakMemory()
        embedding = _sparse_embedding(model) if plan.drop_embedding_pages else None
        if embedding is not None:  # the load-time snapshot read all of it
            pages.drop_file_pages(embedding)
        try:
            for spec in plan.methods:
                work = [(s, r) for (m, s, r) in todo if m is spec]
                if not work:
                    continue
                bar.set_description(f"{spec.name}: preparing")
                with host_out():
                    editor: Editor = make_editor(spec, model, tok, plan.device,
                                                 _model_path(cfg.model) if spec.kind == "easyedit" else None,
                                                 neuron_cache_dir=neuron_dir)
                for source, record in work:
                    rid = str(record.example_id)
                    bar.set_description(f"{spec.name} {source} #{rid}")
                    memory.start_window()
                    ref = unedited.get(model, tok, record)
                    row: dict[str, Any] = {
                        "key": store.row_key(spec.name, source, rid),
                        "method": spec.name, "kind": spec.kind, "source": source, "record_id": rid,
                        "record_index": index_of[rid], "cfg_id": plan.method_ids[spec.name],
                        "seed": plan.seed, "shard": shard_txt, "hardware": env["hardware"],
                        "status": "ok", "error": None, "scores": None, "edit_stats": {},
                        "edit_s": 0.0, "eval_s": 0.0, "restore": {"checked": 0, "restored": 0},
                    }
                    if not editor.edits:
                        row["scores"] = ref.scores
                    elif spec.needs_subject_slot and not record.fact(source).has_subject_slot:
                        row["status"] = "skipped"
                        row["error"] = {"type": "NoSubjectSlot",
                                        "message": f"the {source} question does not contain the subject verbatim; "
                                                   f"{spec.name} needs the subject position"}
                    else:
                        if source not in requests:
                            requests[source] = build_requests(plan, source)
                        request = requests[source][rid]
                        if hooks.before_edit is not None:
                            hooks.before_edit(spec, source, record)
                        where = f"record {rid} (method {spec.name}, source {source})"
                        out_model, weights_copy = None, {}
                        flags = _ModelFlags.of(model)
                        set_seed(plan.seed)
                        t0, c0 = time.perf_counter(), time.process_time()
                        try:
                            try:
                                with host_out():
                                    out_model, weights_copy, stats = editor.edit(model, tok, request)
                                row["edit_stats"] = stats
                            except Exception as exc:  # a failed edit must leave the model unchanged
                                if plan.on_edit_error == "raise":
                                    raise
                                row["status"] = "error"
                                row["error"] = _error_info(exc)
                                row["edit_stats"] = editor.last_stats()
                            row["edit_s"] = time.perf_counter() - t0
                            row["edit_cpu_s"] = time.process_time() - c0
                            if row["status"] == "ok":
                                set_seed(plan.seed)
                                t1, c1 = time.perf_counter(), time.process_time()
                                row["scores"] = score_record(
                                    out_model, tok, record, plan.eval_langs, device=plan.device,
                                    batch_size=batch_size, max_new_tokens=max_new, reference=ref,
                                )
                                row["eval_s"] = time.perf_counter() - t1
                                row["eval_cpu_s"] = time.process_time() - c1
                            else:
                                row["scores"] = ref.scores  # the unchanged model's scores
                        finally:
                            t2 = time.perf_counter()
                            restored = _undo(model, out_model, weights_copy, flags)
                            try:
                                checked = snapshot.verify(model, where)
                            except RestoreMismatchError as exc:
                                with store.JsonlWriter(plan.run_dir / store.RESTORE_FAILURES, wait=120) as fw:
                                    fw.append({"key": row["key"], "message": str(exc)})
                                raise
                            if embedding is not None:  # the check read all of it; a forward reads a few rows
                                pages.drop_file_pages(embedding)
                            row["restore"] = {"checked": checked, "restored": restored,
                                              "s": time.perf_counter() - t2}
                    row["scores"] = jsonable(row["scores"])
                    row["peak_rss_mib"] = memory.process_peak_mib()
                    if memory.per_window:  # this row's own peak (edit, evaluation, restore)
                        row["row_peak_rss_mib"] = memory.window_peak_mib()
                        row["row_start_rss_mib"] = memory.window_start_mib
                    envinfo.release_freed_memory()
                    out.append(row)
                    summary.written += 1
                    summary.errors += row["status"] == "error"
                    summary.skipped += row["status"] == "skipped"
                    summary.restore_checks += bool(row["restore"]["checked"])
                    bar.update(1)
                    if hooks.after_row is not None:
                        hooks.after_row(row)
        finally:
            bar.close()
    summary.wall_s = time.perf_counter() - t_start
    say(
        f"memla-mkeb: wrote {summary.written} rows ({summary.errors} failed edits, {summary.skipped} skipped, "
        f"{summary.restore_checks} restore checks passed) in {summary.wall_s:.1f} s -> {results_path}",
        file=sys.stderr,
    )
    return summary


__all__ = ["Hooks", "Plan", "RunSummary", "build_requests", "plan_run", "run_benchmark", "set_seed"]
