"""memla-plugin: MEMLA multilingual knowledge editing and the MKEB benchmark for EasyEdit.

Importing this package is cheap and has no side effects: torch, transformers and
EasyEdit are imported only when the objects that need them are first used.
"""
from __future__ import annotations

from .lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily (PEP 562)
_LAZY = {
    "MEMLAHyperParams": "memla_plugin.hparams",
    "apply_memla_to_model": "memla_plugin.memla_main",
    "load_model": "memla_plugin.models",
    "resolve_architecture": "memla_plugin.architectures",
    "ArchSpec": "memla_plugin.architectures",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _LAZY)
