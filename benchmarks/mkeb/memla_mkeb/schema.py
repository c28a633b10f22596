"""Types and choices of the plain run settings, declared as structured configs.

``conf/config.yaml`` and its groups (``conf/data/``, ``conf/sequential/``, ``conf/batch/``,
``conf/perplexity/``) hold the defaults and explain them; these dataclasses say what type each
``shard.*``, ``eval.*``, ``data.*``, ``run.*``,
``sequential.*``, ``batch.*`` and ``perplexity.*`` value must have and which words a choice takes.
OmegaConf (Hydra's config library) checks and converts the values against them in
:func:`.settings.checked`. That happens when a run is planned, not while Hydra composes the
config: Hydra reports a compose error as several lines with exit status 1, while a bad setting
of this harness ends as one ``memla-mkeb: error:`` line naming it, with status 2.

Range checks (``data.limit >= 1``, the shard index within the count, ...) and whatever needs
the data, the catalog or files stay in :mod:`.settings`.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from memla_plugin.mkeb.generation import GEN_MAX_NEW_TOKENS

from .restore import MODES

ShardMode = Enum("ShardMode", ["contiguous", "strided"])
RestoreCheck = Enum("RestoreCheck", list(MODES))
OnEditError = Enum("OnEditError", ["record", "raise"])
HostOutput = Enum("HostOutput", ["log", "show"])


def _hint(default: Any, hint: str) -> Any:
    """A field with what to write instead of a value of the wrong type."""
    return field(default=default, metadata={"hint": hint})


@dataclass
class ShardSchema:
    index: int = _hint(0, "give an integer")
    count: int = _hint(1, "give an integer")
    mode: ShardMode = ShardMode.contiguous


@dataclass
class EvalSchema:
    batch_size: int = _hint(16, "give an integer")
    max_new_tokens: Optional[int] = _hint(None, "give an integer or null")
    #: length bound of the greedy answers the generation-based metrics read (0: not measured)
    gen_max_new_tokens: int = _hint(GEN_MAX_NEW_TOKENS, "give an integer (0 leaves the generation metrics out)")
    #: how those answers are asked (null: the run's prompt_format)
    gen_prompt_format: Optional[str] = _hint(None, "give bare, chat, preamble or null")


@dataclass
class DataSchema:
    name: Optional[str] = None
    path: Optional[str] = "default"
    ids: Optional[str] = "auto"
    limit: Optional[int] = _hint(None, "give an integer or null")
    #: longest prompt (characters) a record may hold; every prompt is batched whole into the model
    max_prompt_chars: Optional[int] = _hint(1000, "give a number of characters or null (no limit)")


@dataclass
class RunSchema:
    progress: bool = _hint(True, "give true or false")
    restore_check: RestoreCheck = RestoreCheck.sha256
    on_edit_error: OnEditError = OnEditError.record
    threads: Optional[int] = _hint(None, "give an integer or null")
    malloc_mmap_threshold: Optional[int] = _hint(
        131072, "give a size in bytes (e.g. 131072) or null for glibc's default")
    drop_embedding_pages: bool = _hint(True, "give true or false")
    share_neurons: bool = _hint(True, "give true or false")
    neuron_dir: Optional[str] = None
    host_output: HostOutput = HostOutput.log


@dataclass
class SequentialSchema:
    #: edits per sequence, applied one after another without restoring (null: single edits)
    n: Optional[int] = _hint(None, "give an integer (edits per sequence) or null (single edits)")


@dataclass
class BatchSchema:
    #: facts per batch edit, each method editing them in one go (null: single edits)
    size: Optional[int] = _hint(None, "give an integer (facts per batch edit) or null (single edits)")


@dataclass
class PerplexitySchema:
    #: measure held-out perplexity before and after every edit (memla_plugin.mkeb.perplexity)
    enabled: bool = _hint(False, "give true or false")
    path: Optional[str] = "default"
    ids: Optional[str] = "test"
    #: the last N records of that selection give the held-out texts
    last: int = _hint(100, "give an integer")
    batch_size: int = _hint(8, "give an integer")


#: config section -> its schema
SECTIONS: dict[str, type] = {"shard": ShardSchema, "eval": EvalSchema, "data": DataSchema, "run": RunSchema,
                             "sequential": SequentialSchema, "perplexity": PerplexitySchema, "batch": BatchSchema}


def problem(section: str, key: str, value: Any) -> str:
    """One line naming ``section.key``, the value given, and what it may be."""
    schema = SECTIONS[section]
    types = typing.get_type_hints(schema)
    if key not in types:
        return f"{section}.{key} is not a setting; {section} has {', '.join(sorted(types))}"
    if isinstance(types[key], type) and issubclass(types[key], Enum):
        choices = [m.name for m in types[key]]
        return f"{section}.{key}={value!r} unknown; use {', '.join(choices[:-1])} or {choices[-1]}"
    hint = next(f.metadata.get("hint") for f in dataclasses.fields(schema) if f.name == key)
    return f"{section}.{key}={value!r}: {hint or 'not a valid value'}"


def plain(value: Any) -> Any:
    """A checked value as the rest of the harness reads it (a choice as its word)."""
    return value.name if isinstance(value, Enum) else value


__all__ = ["BatchSchema", "DataSchema", "EvalSchema", "PerplexitySchema", "RunSchema", "SECTIONS", "SequentialSchema", "ShardSchema",
           "plain", "problem"]
