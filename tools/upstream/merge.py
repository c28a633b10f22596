"""Several plugin modules in one upstream file, for the rows of :mod:`.layout` that share a path.

The plugin splits its code into small modules; upstream, a method package of a dozen files reads
better than one of thirty. :func:`merge_modules` joins the (already transformed) texts of the
modules a path collects: one docstring (the first module's), one block of imports (each
imported module once, the names of all its statements together), the bodies one after the
other in table order, and no import of the file from itself. A top-level name defined by two of
the modules with different code is an error naming both; the same definition twice is kept once.
"""
from __future__ import annotations

import ast
import sys
from typing import Sequence

from .textedit import ExportError, parse as _parse


def _docstring(tree: ast.Module):
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _resolve(package: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _defined(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    return []


def _self_imports(tree: ast.Module, package: str, module: str, path: str) -> list[ast.ImportFrom]:
    """``from .<this file> import x`` statements anywhere in ``tree`` (at module level, each name must keep its own
    name; inside a function, ``import x as y`` becomes ``y = x``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _resolve(package, node.level, node.module) == module:
            renamed = [a for a in node.names if a.asname and a.asname != a.name]
            if renamed and node.col_offset == 0:
                raise ExportError(f"{path}:{node.lineno}: `import {renamed[0].name} as {renamed[0].asname}` "
                                  "from a module merged into the same file")
            found.append(node)
    return found


def merge_modules(path: str, module: str, texts: Sequence[tuple[str, str]]) -> str:
    """One upstream file from ``[(plugin module, transformed text)]``; ``module`` is its dotted upstream name."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    docstring = None
    future: list[str] = []
    imports: dict[tuple[int, str], list[str]] = {}
    plain: list[str] = []
    bodies: list[str] = []
    owners: dict[str, tuple[str, str]] = {}
    for name, text in texts:
        tree = _parse(text, path)
        lines = text.splitlines(keepends=True)
        drop: set[int] = set()
        doc = _docstring(tree)
        if doc is not None:
            docstring = docstring or "".join(lines[doc.lineno - 1: doc.end_lineno])
            drop.update(range(doc.lineno, doc.end_lineno + 1))
        for node in _self_imports(tree, package, module, path):
            indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
            if indent:  # a lazy import inside a function: the names are the file's own now
                renamed = [f"{a.asname} = {a.name}" for a in node.names if a.asname and a.asname != a.name]
                keep = "; ".join(renamed) or ("pass" if _only_statement(tree, node) else "")
                lines[node.lineno - 1] = " " * indent + keep + "\n" if keep else ""
                for i in range(node.lineno + 1, node.end_lineno + 1):
                    lines[i - 1] = ""
            else:
                drop.update(range(node.lineno, node.end_lineno + 1))
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                future += [a.name for a in stmt.names if a.name not in future]
            elif isinstance(stmt, ast.ImportFrom):
                if _resolve(package, stmt.level, stmt.module) == module:
                    continue
                names = imports.setdefault((stmt.level, stmt.module or ""), [])
                for a in stmt.names:
                    item = a.name + (f" as {a.asname}" if a.asname else "")
                    if item not in names:
                        names.append(item)
            elif isinstance(stmt, ast.Import):
                for a in stmt.names:
                    item = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                    if item not in plain:
                        plain.append(item)
            else:
                source = "".join(lines[stmt.lineno - 1: stmt.end_lineno])
                for defined in _defined(stmt):
                    if defined in owners and owners[defined][1] != source:
                        raise ExportError(f"{path}: {defined} is defined by both {owners[defined][0]} and {name}; "
                                          "rename one or give the modules their own files in layout.py")
                    if defined in owners:
                        drop.update(range(stmt.lineno, stmt.end_lineno + 1))
                    owners.setdefault(defined, (name, source))
                continue
            drop.update(range(stmt.lineno, stmt.end_lineno + 1))
        body = "".join(l for i, l in enumerate(lines, 1) if i not in drop).strip("\n")
        if body:
            bodies.append(body)
    head = [docstring.rstrip("\n")] if docstring else []
    if future:
        head.append(f"from __future__ import {', '.join(future)}")
    absolute = [f"from {m} import {', '.join(sorted(n))}" for (level, m), n in imports.items() if level == 0]
    relative = [f"from {'.' * level}{m} import {', '.join(sorted(n))}"
                for (level, m), n in sorted(imports.items(), key=lambda item: (-item[0][0], item[0][1]))
                if level > 0]
    std = [l for l in sorted(plain) + sorted(absolute) if _top(l) in sys.stdlib_module_names]
    other = [l for l in sorted(plain) + sorted(absolute) if _top(l) not in sys.stdlib_module_names]
    blocks = ["\n".join(head), "\n".join(std), "\n".join(other), "\n".join(relative)]
    top = "\n\n".join(b for b in blocks if b)
    gap = "\n\n\n" if bodies and bodies[0].startswith(("def ", "async def ", "class ", "@")) else "\n\n"
    return _drop_repeated_imports(top + gap + "\n\n\n".join(bodies) + "\n", path)


def _drop_repeated_imports(text: str, path: str) -> str:
    """Remove imports inside functions of names the file now imports at the top from the same module."""
    tree = _parse(text, path)
    at_top = {(n.level, n.module, a.name, a.asname) for n in tree.body if isinstance(n, ast.ImportFrom)
              for a in n.names}
    lines = text.splitlines(keepends=True)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and all((node.level, node.module, a.name, a.asname) in at_top
                                                        for a in node.names):
                for i in range(node.lineno, node.end_lineno + 1):
                    lines[i - 1] = ""
                if node.end_lineno < len(lines) and not lines[node.end_lineno].strip():
                    lines[node.end_lineno] = ""  # the blank line that set the import apart
    return "".join(lines)


def _top(line: str) -> str:
    """The top-level package an import line names."""
    return line.split()[1].split(".")[0]


def _only_statement(tree: ast.Module, stmt: ast.stmt) -> bool:
    for n in ast.walk(tree):
        body = getattr(n, "body", None)
        if isinstance(body, list) and body == [stmt] and n is not tree:
            return True
    return False
