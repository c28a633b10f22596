"""Lazy package attributes (PEP 562), so importing a package does not import torch.

Each package keeps a table ``{public name: module}`` and sets
``__getattr__ = lazy_getattr(__name__, TABLE)``; a name is imported on first use.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``table`` entries (absolute, or relative to ``package``)."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(import_module(table[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
