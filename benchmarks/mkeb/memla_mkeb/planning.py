"""What a run will do, decided before any model loads, and whether a run dir may take its rows.

:func:`plan_run` turns the config into a :class:`Plan`: the methods, languages and records
of this shard, every run setting resolved, and the identity of the settings (``base_id``
for what all methods share, one ``cfg_id`` per method). A run dir refuses rows whose
``cfg_id`` differs from the plan's (:func:`check_resume`), and names the settings that changed.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from memla_plugin.mkeb.generation import GEN_MAX_NEW_TOKENS
from memla_plugin.mkeb.loader import check_prompt_lengths

from . import store
from .protocol import check_one_checkout
from .settings import (
    MKEB_LANGS,
    BenchConfigError,
    MethodSpec,
    check_batch,
    check_counts,
    check_gen_format,
    check_drop_embedding_pages,
    check_host_output,
    check_langs,
    check_limit,
    check_mmap_threshold,
    check_on_edit_error,
    check_perplexity,
    check_prompt_format,
    check_restore_mode,
    check_seed,
    check_sequential,
    check_shard,
    checked,
    data_paths,
    file_sha256,
    resolve_methods,
    resolve_run_dir,
    shard_slice,
    shard_tag,
    stable_hash,
)

#: Part of every ``base_id``: bump it when a row's meaning changes, so old run dirs refuse new rows.
ROW_VERSION = 1


@dataclass(frozen=True)
class RunOptions:
    """The ``run.*`` and ``eval.*`` settings the loop reads (how to run, not what the numbers mean)."""

    progress: bool = True
    threads: Optional[int] = None
    host_output: str = "log"
    neuron_dir: Optional[str] = None  # where MEMLA variants share attributions (None: not shared)
    batch_size: int = 16
    max_new_tokens: Optional[int] = None
    gen_max_new_tokens: int = GEN_MAX_NEW_TOKENS  # generation-based metrics: answer length bound (0: not measured)
    gen_prompt_format: Optional[str] = None  # how their answers are asked (None: the run's prompt_format)


@dataclass(frozen=True)
class HeldOut:
    """The held-out perplexity texts' records and how they are batched (``perplexity.*``)."""

    records: tuple[Any, ...]
    ids: tuple[str, ...]
    batch_size: int


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
    prompt_format: str = "bare"  # how every prompt is put to the model (memla_plugin.prompt_format)
    base_id: str = ""
    method_ids: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # what the ids hash, for readable mismatches
    options: RunOptions = field(default_factory=RunOptions)
    sequential_n: Optional[int] = None  # sequential.n (None: single edits)
    sequences: list[list[Any]] = field(default_factory=list)  # this shard's sequences of records
    heldout: Optional[HeldOut] = None  # perplexity texts (None: perplexity.enabled is false)
    batch_n: Optional[int] = None  # batch.size (None: single edits)
    batches: list[list[Any]] = field(default_factory=list)  # this shard's batches of records

    def keys(self) -> list[tuple[MethodSpec, str, Any]]:
        """Single-edit rows; in a sequential or batch run only the unedited reference has them."""
        grouped = self.sequential_n is not None or self.batch_n is not None
        methods = [m for m in self.methods if not grouped or m.kind == "unedited"]
        return [(m, s, r) for m in methods for s in self.sources for r in self.records]

    def pending(self, done: dict[str, dict[str, Any]]) -> list[tuple[MethodSpec, str, Any]]:
        """The (method, source, record) keys of this shard that no results file holds yet."""
        return [(m, s, r) for (m, s, r) in self.keys() if store.row_key(m.name, s, r.example_id) not in done]

    def sequence_keys(self) -> list[tuple[MethodSpec, str, list[Any]]]:
        """(method, source, records of one sequence) for every editing method of a sequential run."""
        if self.sequential_n is None:
            return []
        return [(m, s, seq) for m in self.methods if m.kind != "unedited" for s in self.sources
                for seq in self.sequences]

    def pending_sequences(self, done: dict[str, dict[str, Any]]) -> list[tuple[MethodSpec, str, list[Any]]]:
        """The sequences no sequences file holds yet (an interrupted one is redone from its first edit)."""
        return [(m, s, q) for (m, s, q) in self.sequence_keys()
                if store.sequence_key(len(q), m.name, s, q[0].example_id) not in done]

    def batch_keys(self) -> list[tuple[MethodSpec, str, list[Any]]]:
        """(method, source, records of one batch) for every editing method of a batch run."""
        return [(m, s, b) for m in self.methods if m.kind != "unedited" for s in self.sources
                for b in self.batches] if self.batch_n is not None else []

    def pending_batches(self, done: dict[str, dict[str, Any]]) -> list[tuple[MethodSpec, str, list[Any]]]:
        """The batches no batches file holds yet (an interrupted one is redone whole)."""
        return [(m, s, b) for (m, s, b) in self.batch_keys()
                if store.batch_key(len(b), m.name, s, b[0].example_id) not in done]


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


def _run_options(cfg: Any, run_dir: Path) -> RunOptions:
    run_cfg, eval_cfg = checked(cfg, "run"), checked(cfg, "eval")
    neuron_dir = str(run_cfg["neuron_dir"] or (run_dir / "neurons")) if run_cfg["share_neurons"] else None
    return RunOptions(progress=run_cfg["progress"], threads=run_cfg["threads"] or None,
                      host_output=run_cfg["host_output"], neuron_dir=neuron_dir,
                      batch_size=eval_cfg["batch_size"] or 16, max_new_tokens=eval_cfg["max_new_tokens"],
                      gen_max_new_tokens=eval_cfg["gen_max_new_tokens"],
                      gen_prompt_format=check_gen_format(eval_cfg["gen_prompt_format"]))


def _select_records(langs: list[str], data_path: Path, ids: Optional[str], limit: Optional[int]) -> list[Any]:
    """The records of ``data.ids`` (first ``data.limit``); each must have every language of ``langs``."""
    from memla_plugin.mkeb.loader import load_mkeb

    records = load_mkeb(data_path, ids)
    have = set(records[0].langs) if records else set()
    for rec in records:
        have &= set(rec.langs)
    lacking = [lang for lang in sorted(langs, key=MKEB_LANGS.index) if lang not in have]
    if lacking:
        raise BenchConfigError(
            f"language {', '.join(repr(x) for x in lacking)} (source_langs/eval_langs) not in every record of "
            f"{data_path}; the data has {' '.join(sorted(have, key=lambda x: (x not in MKEB_LANGS, x)))}"
        )
    if limit is not None:
        records = records[:limit]
    if not records:
        raise BenchConfigError(f"no records selected from {data_path} (data.ids={ids}, data.limit={limit})")
    return records


def _identity(cfg: Any, methods: list[MethodSpec], eval_langs: list[str], data_path: Path,
              seed: int, prompt_format: str = "bare", extra: Optional[dict[str, Any]] = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what every method's rows share, each method's own settings): what ``base_id``/``cfg_id`` hash.

    Changing what goes in here makes committed run dirs refuse to resume.
    """
    hp_shas = {m.name: _hparams_sha(m) for m in methods}
    base = {
        "model": {"name_or_path": str(cfg.model.get("name_or_path")), "dtype": cfg.model.get("dtype")},
        "data_sha256": file_sha256(data_path)[:16],
        "eval_langs": eval_langs,
        "max_new_tokens": (cfg.get("eval") or {}).get("max_new_tokens"),
        "seed": seed,
        "row_version": ROW_VERSION,
    }
    gen = {k: (cfg.get("eval") or {}).get(k) for k in ("gen_max_new_tokens", "gen_prompt_format")}
    if gen.get("gen_max_new_tokens") not in (None, GEN_MAX_NEW_TOKENS) or gen.get("gen_prompt_format") is not None:
        base["gen"] = gen  # the defaults are left out, so run dirs made before these settings keep their ids
    if prompt_format != "bare":  # absent for bare, so run dirs made before the setting keep their ids
        base["prompt_format"] = prompt_format
    base.update(extra or {})  # sequential / perplexity settings, only when set (older run dirs keep their ids)
    return base, {m.name: {**m.to_json(), "hparams": hp_shas[m.name]} for m in methods}


def plan_run(cfg: Any) -> Plan:
    """Validate ``cfg`` and select the records this process runs. Raises BenchConfigError."""
    check_one_checkout()
    methods = resolve_methods(cfg)
    sources = check_langs(cfg.get("source_langs"), "source_langs")
    eval_raw = cfg.get("eval_langs")
    eval_langs = list(MKEB_LANGS) if eval_raw is None else check_langs(eval_raw, "eval_langs")
    shard = check_shard(cfg)
    limit = check_limit(cfg)
    data_path, ids = data_paths(cfg)
    restore_mode, on_edit_error = check_restore_mode(cfg), check_on_edit_error(cfg)
    check_host_output(cfg)
    check_counts(cfg)
    mmap_threshold, drop_pages = check_mmap_threshold(cfg), check_drop_embedding_pages(cfg)
    seed = check_seed(cfg)
    prompt_format = check_prompt_format(cfg)
    records = _select_records(list(set(eval_langs) | set(sources)), data_path, ids, limit)
    check_prompt_lengths(records, checked(cfg, "data")["max_prompt_chars"], f"MKEB file {data_path}",
                         "data.max_prompt_chars")
    seq_n = check_sequential(cfg, len(records))
    batch_n = check_batch(cfg, len(records), seq_n)
    if batch_n is not None:
        from .batch import check_batch_methods

        check_batch_methods(methods)
    heldout, ppl_identity = perplexity_records(cfg, data_path, records)
    extra = {**({"sequential": {"n": seq_n}} if seq_n else {}), **({"batch": {"size": batch_n}} if batch_n else {}),
             **ppl_identity}
    base, method_settings = _identity(cfg, methods, eval_langs, data_path, seed, prompt_format, extra)
    base_id = stable_hash(base)
    group = seq_n or batch_n
    groups = shard_slice([records[i:i + group] for i in range(0, len(records), group)], *shard) if group else []
    run_dir = resolve_run_dir(cfg)
    return Plan(
        cfg=cfg, run_dir=run_dir, tag=shard_tag(shard[0], shard[1]), methods=methods, sources=sources,
        eval_langs=eval_langs, records=[r for q in groups for r in q] if group else shard_slice(records, *shard),
        all_ids=[str(r.example_id) for r in records],
        data_path=data_path, ids=ids, shard=shard, seed=seed, device=str(cfg.model.get("device") or "cpu"),
        restore_mode=restore_mode, on_edit_error=on_edit_error, mmap_threshold=mmap_threshold,
        drop_embedding_pages=drop_pages, prompt_format=prompt_format, base_id=base_id,
        method_ids={m.name: stable_hash({"base": base_id, "method": method_settings[m.name]}) for m in methods},
        settings={"base": base, "methods": method_settings}, options=_run_options(cfg, run_dir),
        sequential_n=seq_n, sequences=groups if seq_n else [], heldout=heldout,
        batch_n=batch_n, batches=groups if batch_n else [],
    )


def perplexity_records(cfg: Any, data_path: Path, evaluated: list[Any]) -> tuple[Optional[HeldOut], dict[str, Any]]:
    """The perplexity texts' records (None when off) and their part of the run's identity.

    A record both evaluated (or edited) and held out would make the perplexity text part of
    what the edit touches: such a selection is refused before the model loads.
    """
    from memla_plugin.mkeb.loader import load_mkeb

    ppl = check_perplexity(cfg)
    if ppl is None:
        return None, {}
    held = load_mkeb(ppl["path"], ppl["ids"])[-ppl["last"]:]
    if not held:
        raise BenchConfigError(f"perplexity: no records in {ppl['path']} (perplexity.ids={ppl['ids']})")
    held_ids = [str(r.example_id) for r in held]
    sha = file_sha256(ppl["path"])[:16]
    if sha == file_sha256(data_path)[:16]:
        both = sorted(set(held_ids) & {str(r.example_id) for r in evaluated}, key=held_ids.index)
        if both:
            raise BenchConfigError(
                f"perplexity: {len(both)} evaluated record(s) (e.g. {both[0]}) are also among the held-out "
                f"perplexity texts (the last {ppl['last']} of perplexity.ids={ppl['ids']}); lower data.limit or "
                f"choose other perplexity.ids/perplexity.last")
    identity = {"perplexity": {"data_sha256": sha, "ids": stable_hash(held_ids)}}
    return HeldOut(tuple(held), tuple(held_ids), ppl["batch_size"]), identity


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def method_set_plan_name(live_name: str, methods: Sequence[str]) -> str:
    """``plan.shard0of2.json`` run with methods ``[a, b]`` -> ``plan.shard0of2.m-<10 hex of a,b>.json``.

    Every sitting rewrites its shard's plan file with the methods it runs; a run dir whose methods are
    made in several steps (some methods first, the others later) would otherwise keep only the last
    step's settings, and the report could not check the other rows against them. The copy under this
    name is kept beside it, one per method set.
    """
    key = hashlib.sha1(",".join(sorted(methods)).encode("utf-8")).hexdigest()[:10]
    return f"{live_name[:-len('.json')]}.m-{key}.json"


def save_run_files(plan: Plan, env: dict[str, Any]) -> None:
    """Resolved config, plan (also under its method set's name), environment and a line in sittings.jsonl."""
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
    _write_json(plan.run_dir / method_set_plan_name(f"plan{plan.tag}.json", list(plan.method_ids)), meta)
    _write_json(plan.run_dir / f"env{plan.tag}.json", env)
    with store.JsonlWriter(plan.run_dir / "sittings.jsonl", wait=120) as w:
        w.append({"shard": plan.tag or ".", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "env": env,
                  "argv": sys.argv[1:]})


def check_resume(plan: Plan, done: dict[str, dict[str, Any]],
                 unedited: Optional[dict[str, dict[str, Any]]] = None) -> None:
    """Refuse to mix rows made with other settings into this run dir.

    Called with the run dir's lock held and before anything is written there, so a refused
    run leaves its plan, config and environment files as they were. ``unedited``: the run
    dir's cached unedited scores (:func:`.store.load_cache`), which carry the ``base_id``.
    """
    by_method = {m.name: m for m in plan.methods}
    for row in done.values():
        name = row.get("method")
        if name in by_method and row.get("cfg_id") != plan.method_ids[name]:
            raise BenchConfigError(
                f"run dir {plan.run_dir} already has rows for method {name!r} made with other settings "
                f"({_what_changed(plan, name, row.get('cfg_id'))}); use a new run_dir or restore those settings"
            )
    for rid, row in (unedited or {}).items():
        if row.get("base_id") != plan.base_id:
            raise BenchConfigError(
                f"run dir {plan.run_dir} holds unedited scores of record {rid} made with other settings "
                f"({_base_changed(plan)}); use a new run_dir or restore those settings"
            )


def _base_changed(plan: Plan) -> str:
    """Name the shared settings that differ from the latest plan file of this run dir."""
    for path in sorted(plan.run_dir.glob(f"plan{plan.tag}.json")) + sorted(plan.run_dir.glob("plan*.json")):
        try:
            before = (json.loads(path.read_text(encoding="utf-8")).get("settings") or {}).get("base") or {}
        except (OSError, ValueError, AttributeError):
            continue
        now = plan.settings["base"]
        diffs = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                 if before.get(k) != now.get(k)]
        if diffs:
            return "; ".join(diffs)
    return "model, data, eval languages or seed differ"


def _flat_settings(settings: dict[str, Any], method: str) -> dict[str, Any]:
    """The shared settings and one method's, in one mapping ("seed", "memla.overrides")."""
    return {**settings["base"], **{f"{method}.{k}": v for k, v in settings["methods"][method].items()}}


def _what_changed(plan: Plan, method: str, old_id: Any) -> str:
    """Name the settings that differ from the run that wrote ``old_id`` (from its plan file)."""
    for path in sorted(plan.run_dir.glob("plan*.json")):
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if (old.get("method_ids") or {}).get(method) != old_id or "settings" not in old:
            continue
        before, now = _flat_settings(old["settings"], method), _flat_settings(plan.settings, method)
        diffs = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                 if before.get(k) != now.get(k)]
        if diffs:
            hint = " (the hparams value is the file's sha256 prefix)" if any(".hparams:" in d for d in diffs) else ""
            return "; ".join(diffs) + hint
    return "model, data, eval languages, seed or the method's hparams differ"


__all__ = ["HeldOut", "Plan", "ROW_VERSION", "RunOptions", "check_resume", "method_set_plan_name", "plan_run",
           "save_run_files"]
