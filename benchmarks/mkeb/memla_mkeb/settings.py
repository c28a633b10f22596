"""Validation of the benchmark config and the choices derived from it.

Everything a user can get wrong on the command line is checked here, before a model is
loaded, and reported as one :class:`BenchConfigError` line naming the setting and value.
Types and choices of the plain settings are declared once, as structured configs in
:mod:`.schema`, and checked by OmegaConf (:func:`checked`); what remains here are ranges and
what depends on files, the catalog or the data.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from memla_plugin.errors import MEMLAError
from memla_plugin.hashing import file_sha256
from memla_plugin.languages import MKEB_LANGS

from . import schema

METHOD_KINDS = ("unedited", "memla", "easyedit")


class BenchConfigError(MEMLAError, ValueError):
    """A benchmark setting is invalid (unknown method, language, missing file, bad shard...)."""


@dataclass(frozen=True)
class MethodSpec:
    """One entry of the catalog, resolved for the current model."""

    name: str
    kind: str
    alg_name: Optional[str] = None
    hparams: Optional[str] = None  # resolved path (None for unedited)
    overrides: dict[str, Any] = field(default_factory=dict)
    needs_subject_slot: bool = False
    grid_point: Optional[dict[str, Any]] = None  # set for a tuning-grid point (memla_mkeb.grid)

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "alg_name": self.alg_name,
            "hparams": self.hparams,
            "overrides": dict(sorted(self.overrides.items())),
            "needs_subject_slot": self.needs_subject_slot,
        }
        if self.grid_point is not None:  # absent otherwise, so existing run dirs keep their settings ids
            out["grid_point"] = dict(self.grid_point)
        return out


def _plain(node: Any) -> Any:
    """OmegaConf node -> plain Python containers (no-op for plain values)."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a core dependency
        pass
    return node


def _as_list(value: Any, setting: str) -> list[Any]:
    value = _plain(value)
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise BenchConfigError(f"{setting} must be a list, got {value!r}")


def check_langs(value: Any, setting: str, *, allow_empty: bool = False) -> list[str]:
    """Validate a list of MKEB language codes; unknown ones are named."""
    langs = [str(x) for x in _as_list(value, setting)]
    unknown = [x for x in langs if x not in MKEB_LANGS]
    if unknown:
        raise BenchConfigError(
            f"unknown language {', '.join(repr(x) for x in unknown)} in {setting}; "
            f"MKEB languages: {' '.join(MKEB_LANGS)}"
        )
    if not langs and not allow_empty:
        raise BenchConfigError(f"{setting} is empty; name at least one of: {' '.join(MKEB_LANGS)}")
    dup = sorted({x for x in langs if langs.count(x) > 1})
    if dup:
        raise BenchConfigError(f"{setting} names {', '.join(dup)} more than once")
    return langs


def default_hparams_dir() -> Path:
    """The repository's ``hparams/`` (next to ``memla_plugin``), else ``./hparams``."""
    import memla_plugin

    repo = Path(memla_plugin.__file__).resolve().parent.parent / "hparams"
    return repo if repo.is_dir() else Path.cwd() / "hparams"


def catalog_alg_name(name: str, entry: dict[str, Any]) -> str:
    """The EasyEdit algorithm of catalog method ``name`` (``alg_name``, else MEMLA / the name upper-cased)."""
    kind = str(entry.get("kind", "easyedit"))
    return str(entry.get("alg_name") or ("MEMLA" if kind == "memla" else name.upper()))


def catalog_hparams_path(entry: dict[str, Any], alg: str, hparams_dir: Path, model_key: str) -> str:
    """The hparams file a catalog entry names: its ``hparams`` template (default
    ``{hparams_dir}/<alg>/{model}.yaml``) with the folder and the model's hparams name filled in."""
    template = str(entry.get("hparams") or "{hparams_dir}/" + alg + "/{model}.yaml")
    return template.replace("{hparams_dir}", str(hparams_dir)).replace("{model}", model_key)


def resolve_methods(cfg: Any) -> list[MethodSpec]:
    """Look up every name of ``cfg.methods`` in ``cfg.catalog``; unknown names are errors."""
    names = [str(x) for x in _as_list(cfg.methods, "methods")]
    if not names:
        raise BenchConfigError("methods is empty; name at least one method, e.g. methods=[unedited,memla]")
    from .grid import with_grid

    catalog = with_grid(_plain(cfg.get("catalog")) or {}, cfg.get("grid"))  # + <method>@<value> grid points
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise BenchConfigError(
            f"unknown method {', '.join(repr(n) for n in unknown)} in methods; "
            f"known: {', '.join(sorted(catalog))} (define new ones under catalog.<name>)"
        )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BenchConfigError(f"methods names {', '.join(dup)} more than once")
    hp_dir = cfg.get("hparams_dir")
    hp_dir = Path(str(hp_dir)) if hp_dir else default_hparams_dir()
    model_key = str(cfg.model.get("hparams_name") or cfg.model.get("name"))
    specs = []
    for name in names:
        entry = catalog[name] or {}
        if not isinstance(entry, dict):
            raise BenchConfigError(f"catalog.{name} must be a mapping, got {entry!r}")
        kind = str(entry.get("kind", "easyedit"))
        if kind not in METHOD_KINDS:
            raise BenchConfigError(f"catalog.{name}.kind={kind!r} unknown; use one of {', '.join(METHOD_KINDS)}")
        alg = entry.get("alg_name")
        hparams = None
        if kind != "unedited":
            alg = catalog_alg_name(name, entry)
            hparams = catalog_hparams_path(entry, alg, hp_dir, model_key)
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise BenchConfigError(f"catalog.{name}.overrides must be a mapping, got {overrides!r}")
        specs.append(
            MethodSpec(
                name=name,
                kind=kind,
                alg_name=alg,
                hparams=hparams,
                overrides=dict(overrides),
                needs_subject_slot=bool(entry.get("needs_subject_slot", False)),
                grid_point=entry.get("grid_point"),
            )
        )
    return specs


def checked(cfg: Any, section: str) -> dict[str, Any]:
    """``cfg.<section>`` (shard, eval, data or run) checked against its structured config in :mod:`.schema`.

    Defaults fill what the section leaves out, choices come back as their words. Raises
    BenchConfigError naming the first value of the wrong type, unknown choice or unknown key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    node = _plain(cfg.get(section)) or {}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema.SECTIONS[section]), node)
    except OmegaConfBaseException as exc:
        key = str(exc.key)
        raise BenchConfigError(schema.problem(section, key, node.get(key))) from None
    return {k: schema.plain(v) for k, v in OmegaConf.to_container(merged).items()}  # type: ignore[union-attr]


def check_shard(cfg: Any) -> tuple[int, int, str]:
    shard = checked(cfg, "shard")
    index, count = shard["index"], shard["count"]
    if count < 1:
        raise BenchConfigError(f"shard.count={count} must be at least 1")
    if not 0 <= index < count:
        raise BenchConfigError(f"shard.index={index} must be in 0..{count - 1} (shard.count={count})")
    return index, count, shard["mode"]


def shard_slice(items: Sequence[Any], index: int, count: int, mode: str) -> list[Any]:
    """The part of ``items`` that shard ``index`` of ``count`` runs (see conf/config.yaml)."""
    if mode == "strided":
        return list(items[index::count])
    n = len(items)
    base, extra = divmod(n, count)
    start = index * base + min(index, extra)
    stop = start + base + (1 if index < extra else 0)
    return list(items[start:stop])


def shard_tag(index: int, count: int) -> str:
    """File-name part of a shard ('' for an unsharded run)."""
    return "" if count == 1 else f".shard{index}of{count}"


def data_paths(cfg: Any) -> tuple[Path, Optional[str]]:
    """(data file, id selection) from ``cfg.data``; missing files are named."""
    from memla_plugin.mkeb.loader import ID_SETS, resolve_data_path

    raw_path = cfg.data.get("path")
    path = resolve_data_path(None if raw_path in (None, "default") else str(raw_path))
    if not path.is_file():
        raise BenchConfigError(f"data file not found: data.path={raw_path} ({path})")
    ids = cfg.data.get("ids")
    is_shipped = raw_path in (None, "default")
    if ids == "auto":
        ids = "dev" if is_shipped else None
    if ids is not None:
        ids = str(ids)
        if ids not in ID_SETS and not Path(ids).is_file():
            raise BenchConfigError(f"id file not found: data.ids={ids} (use dev, test, a file, or null)")
    return path, ids


def data_name(cfg: Any) -> str:
    name = cfg.data.get("name")
    if name:
        return str(name)
    raw_path = cfg.data.get("path")
    ids = cfg.data.get("ids")
    if raw_path in (None, "default"):
        return "dev" if ids in ("auto", "dev") else (Path(str(ids)).stem if ids else "all")
    stem = Path(str(raw_path)).stem
    return stem if ids in (None, "auto") else f"{stem}-{Path(str(ids)).stem}"


def check_limit(cfg: Any) -> Optional[int]:
    limit = checked(cfg, "data")["limit"]
    if limit is None:
        return None
    if limit < 1:
        raise BenchConfigError(f"data.limit={limit} must be at least 1")
    return limit


def check_seed(cfg: Any) -> int:
    """seed: an integer (torch, numpy and random are re-seeded with it before every edit and evaluation)."""
    value = _plain(cfg.get("seed", 42))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BenchConfigError(f"seed={value!r}: give an integer")
    return value


def check_gen_format(value: Any) -> Optional[str]:
    """eval.gen_prompt_format: null (the run's prompt_format) or one of the prompt formats."""
    from memla_plugin.prompt_format import PromptFormatError, check_prompt_format as check

    if value is None:
        return None
    try:
        return check(value, "eval.gen_prompt_format")
    except PromptFormatError as exc:
        raise BenchConfigError(str(exc)) from None


def check_counts(cfg: Any) -> None:
    """Counts that must be positive: eval.batch_size, eval.max_new_tokens, run.threads, data.max_prompt_chars."""
    values = {"eval.batch_size": checked(cfg, "eval")["batch_size"],
              "eval.max_new_tokens": checked(cfg, "eval")["max_new_tokens"],
              "run.threads": checked(cfg, "run")["threads"],
              "data.max_prompt_chars": checked(cfg, "data")["max_prompt_chars"]}
    for name, value in values.items():
        if value is not None and value < 1:
            nullable = "" if name == "eval.batch_size" else " or null"
            raise BenchConfigError(f"{name}={value!r} must be at least 1{nullable}")
    gen_tokens = checked(cfg, "eval")["gen_max_new_tokens"]
    if gen_tokens < 0:
        raise BenchConfigError(f"eval.gen_max_new_tokens={gen_tokens!r} must be at least 0 (0: no generation metrics)")


def run_dir_name(cfg: Any) -> str:
    """Default run directory: runs/<model>/<data>-n<limit|all>-seed<seed>[-seq<n>][-ppl]."""
    limit = cfg.data.get("limit")
    name = f"{data_name(cfg)}-n{limit if limit else 'all'}-seed{cfg.seed}"
    seq = (_plain(cfg.get("sequential")) or {}).get("n")
    if seq:
        name += f"-seq{seq}"
    size = (_plain(cfg.get("batch")) or {}).get("size")
    if size:
        name += f"-batch{size}"
    if (_plain(cfg.get("perplexity")) or {}).get("enabled") is True:
        name += "-ppl"
    return str(Path("runs") / str(cfg.model.get("name")) / name)


def resolve_run_dir(cfg: Any) -> Path:
    return Path(str(cfg.run_dir)) if cfg.get("run_dir") else Path(run_dir_name(cfg))


def stable_hash(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (sorted keys): identifies settings."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]



def check_restore_mode(cfg: Any) -> str:
    """run.restore_check (see :data:`.restore.MODES`)."""
    return checked(cfg, "run")["restore_check"]


def check_host_output(cfg: Any) -> str:
    """run.host_output: log or show."""
    return checked(cfg, "run")["host_output"]


def check_on_edit_error(cfg: Any) -> str:
    """run.on_edit_error: record or raise."""
    return checked(cfg, "run")["on_edit_error"]


def check_mmap_threshold(cfg: Any) -> Optional[int]:
    """run.malloc_mmap_threshold: bytes (an int >= 0) or null for glibc's own sliding threshold."""
    value = checked(cfg, "run")["malloc_mmap_threshold"]
    if value is not None and value < 0:
        raise BenchConfigError(
            f"run.malloc_mmap_threshold={value!r}: give a size in bytes (e.g. 131072) or null for glibc's default"
        )
    return value


def check_prompt_format(cfg: Any) -> str:
    """prompt_format: bare, chat or preamble (:mod:`memla_plugin.prompt_format`; bare when absent)."""
    from memla_plugin.prompt_format import PromptFormatError, check_prompt_format as check

    try:
        return check(_plain(cfg.get("prompt_format")))
    except PromptFormatError as exc:
        raise BenchConfigError(str(exc)) from None


def check_sequential(cfg: Any, n_records: int) -> Optional[int]:
    """sequential.n: null (single edits) or edits per sequence, which must divide the selected records."""
    n = checked(cfg, "sequential")["n"]
    if n is None:
        return None
    if n < 1:
        raise BenchConfigError(f"sequential.n={n} must be at least 1 (or null for single edits)")
    if n > n_records or n_records % n:
        raise BenchConfigError(
            f"sequential.n={n} must divide the {n_records} selected record(s) into whole sequences; "
            f"set data.limit to a multiple of {n}")
    return n


def check_batch(cfg: Any, n_records: int, sequential_n: Optional[int]) -> Optional[int]:
    """batch.size: null (single edits) or facts per batch edit, dividing the selected records; not with sequential.n."""
    size = checked(cfg, "batch")["size"]
    if size is None:
        return None
    if size < 1:
        raise BenchConfigError(f"batch.size={size} must be at least 1 (or null for single edits)")
    if sequential_n is not None:
        raise BenchConfigError(f"batch.size={size} and sequential.n={sequential_n} are separate runs; set one of them")
    if size > n_records or n_records % size:
        raise BenchConfigError(f"batch.size={size} must divide the {n_records} selected record(s) into whole batches; "
                               f"set data.limit to a multiple of {size}")
    return size


def check_perplexity(cfg: Any) -> Optional[dict[str, Any]]:
    """perplexity.*: None when off, else the checked section (its data file and ids resolved)."""
    from memla_plugin.mkeb.loader import ID_SETS, resolve_data_path

    ppl = checked(cfg, "perplexity")
    if not ppl["enabled"]:
        return None
    for key in ("last", "batch_size"):
        if ppl[key] < 1:
            raise BenchConfigError(f"perplexity.{key}={ppl[key]} must be at least 1")
    raw = ppl["path"]
    path = resolve_data_path(None if raw in (None, "default") else str(raw))
    if not path.is_file():
        raise BenchConfigError(f"data file not found: perplexity.path={raw} ({path})")
    ids = ppl["ids"]
    if ids is not None and ids not in ID_SETS and not Path(str(ids)).is_file():
        raise BenchConfigError(f"id file not found: perplexity.ids={ids} (use dev, test, train, a file, or null)")
    return {**ppl, "path": path}


def check_drop_embedding_pages(cfg: Any) -> bool:
    """run.drop_embedding_pages: true or false."""
    return checked(cfg, "run")["drop_embedding_pages"]


__all__ = [
    "BenchConfigError",
    "MKEB_LANGS",
    "MethodSpec",
    "catalog_alg_name",
    "catalog_hparams_path",
    "check_drop_embedding_pages",
    "checked",
    "check_batch",
    "check_langs",
    "check_limit",
    "check_mmap_threshold",
    "check_on_edit_error",
    "check_perplexity",
    "check_sequential",
    "check_gen_format",
    "check_prompt_format",
    "check_counts",
    "check_restore_mode",
    "check_seed",
    "check_shard",
    "data_name",
    "data_paths",
    "default_hparams_dir",
    "file_sha256",
    "resolve_methods",
    "resolve_run_dir",
    "run_dir_name",
    "shard_slice",
    "shard_tag",
    "stable_hash",
]
