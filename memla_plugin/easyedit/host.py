"""Access to the EasyEdit host: importing it, and reaching its modules by name.

``import easyeditor`` is slow (~10 s) and has side effects (seeds RNGs, configures logging),
so nothing here runs at import time of :mod:`memla_plugin`; callers ask for the host when
they need it. Some EasyEdit modules cannot be reached as attributes (a star import in
``easyeditor.util`` shadows submodule names), so submodules are fetched with
:func:`importlib.import_module`, which goes through ``sys.modules``.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

from ..errors import EasyEditNotFoundError

HOW_TO_PROVIDE = (
    "EasyEdit (package 'easyeditor') is not importable. Set EASYEDIT_PATH to an EasyEdit "
    "checkout (git clone https://github.com/zjunlp/EasyEdit) and run `memla-setup`, which makes "
    "it importable in this environment and installs the packages `import easyeditor` needs"
)


def import_easyeditor() -> ModuleType:
    """Import and return ``easyeditor`` or raise :class:`EasyEditNotFoundError` saying how to get it."""
    if "easyeditor" in sys.modules and sys.modules["easyeditor"] is None:
        raise EasyEditNotFoundError(HOW_TO_PROVIDE + " (import of easyeditor is blocked in sys.modules)")
    try:
        return importlib.import_module("easyeditor")
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "easyeditor" or missing.startswith("easyeditor."):
            raise EasyEditNotFoundError(HOW_TO_PROVIDE) from exc
        raise EasyEditNotFoundError(
            f"EasyEdit was found but `import easyeditor` failed because the package {missing!r} "
            f"is missing; run `memla-setup` (or pip install 'memla-plugin[easyedit]') to install "
            f"EasyEdit's import dependencies"
        ) from exc
    except ImportError as exc:
        raise EasyEditNotFoundError(
            f"EasyEdit was found but `import easyeditor` failed: {exc}; run `memla-setup` to install "
            f"the dependencies it needs"
        ) from exc


def host_module(name: str) -> ModuleType:
    """Return the EasyEdit submodule ``name`` (e.g. ``"easyeditor.models.rome.rome_main"``)."""
    import_easyeditor()
    return importlib.import_module(name)


def host_modules(prefix: str = "easyeditor") -> list[ModuleType]:
    """All loaded modules of the host package (for patching names they imported)."""
    return [
        mod
        for name, mod in list(sys.modules.items())
        if mod is not None and (name == prefix or name.startswith(prefix + "."))
    ]
