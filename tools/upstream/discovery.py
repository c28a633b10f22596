"""Which plugin modules the export holds: their files and the plugin imports that pull them in."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .layout import MODULES, Row
from .textedit import ExportError


PLUGIN_PKG = "memla_plugin"


@dataclass
class SourceModule:
    """One plugin module: its dotted name, its file and whether it is a package ``__init__``."""

    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports in this module resolve against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def plugin_root() -> Path:
    """The ``memla_plugin`` package directory of the repository this tool lives in."""
    return Path(__file__).resolve().parents[2] / PLUGIN_PKG


def module_file(name: str, root: Optional[Path] = None) -> SourceModule:
    """The source file of plugin module ``name``."""
    root = root or plugin_root()
    parts = name.split(".")
    if parts[0] != PLUGIN_PKG:
        raise ExportError(f"{name} is not a module of {PLUGIN_PKG}")
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return SourceModule(name, base / "__init__.py", True)
    if base.with_suffix(".py").is_file():
        return SourceModule(name, base.with_suffix(".py"), False)
    raise ExportError(f"plugin module {name} not found under {root} (update its row in tools/upstream/layout.py)")


def resolve_from(module: SourceModule, level: int, target: Optional[str]) -> str:
    """Absolute name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def is_plugin(name: str) -> bool:
    return name == PLUGIN_PKG or name.startswith(PLUGIN_PKG + ".")


def plugin_imports(module: SourceModule, text: Optional[str] = None) -> set[str]:
    """Plugin modules ``module`` imports (statements anywhere, ``import_module`` literals)."""
    text = module.path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(text, filename=str(module.path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            absolute = resolve_from(module, node.level, node.module)
            if is_plugin(absolute):
                found.add(absolute)
                for alias in node.names:
                    try:
                        module_file(f"{absolute}.{alias.name}")
                    except ExportError:
                        continue
                    found.add(f"{absolute}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if is_plugin(a.name)}
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            lit = node.args[0]
            if isinstance(lit, ast.Constant) and isinstance(lit.value, str):
                if is_plugin(lit.value):
                    found.add(lit.value)
                elif lit.value.startswith("."):
                    dots = len(lit.value) - len(lit.value.lstrip("."))
                    found.add(resolve_from(module, dots, lit.value.lstrip(".") or None))
    if module.is_package:  # lazy-import tables: {"name": ".submodule"}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"\.\w+", n.value):
                try:
                    found.add(module_file(module.name + n.value).name)
                except ExportError:
                    pass
    found.discard(PLUGIN_PKG)
    return found


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "import_module") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )


def closure(roots: Iterable[str], rows: list[Row], texts: dict[str, str], root: Optional[Path] = None) -> list[str]:
    """The plugin modules reachable from ``roots`` through imports of the (prepared) texts.

    ``texts`` maps a module to its text after stripping, so an import removed by a strip
    does not pull its module in. A module reached but not listed in ``rows`` is an error.
    """
    allowed = {r.plugin for r in rows}
    every = {r.plugin for r in MODULES}
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in allowed:
            where = "is listed for a later pull request" if name in every else "has no row"
            raise ExportError(f"the method code imports {name}, which {where} in tools/upstream/layout.py MODULES")
        seen.append(name)
        mod = module_file(name, root)
        todo.extend(plugin_imports(mod, texts.get(name)))
        parent = name.rpartition(".")[0]
        if parent != PLUGIN_PKG:  # a submodule needs its package
            todo.append(parent)
    return sorted(seen)
