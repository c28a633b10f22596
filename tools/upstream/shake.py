"""Dead code removal: defs nothing in the export uses (to a fixed point), then imports nothing uses."""
from __future__ import annotations

import ast
import re
from collections import Counter
from typing import Iterable

from .textedit import Edits, clean_blank_runs, leading_comments, parse


#: methods frameworks call by name (torch modules and autograd functions, transformers caches)
FRAMEWORK_METHODS = {"forward", "backward", "update", "extra_repr", "get_seq_length", "get_mask_sizes"}


def _defs(tree: ast.Module):
    """(name, node, owner class or None) of top-level defs, constants and base-less classes' methods."""
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not stmt.name.startswith("__"):  # module __getattr__/__dir__ (PEP 562) are hooks
                yield stmt.name, stmt, None
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name) and not targets[0].id.startswith("__"):
                yield targets[0].id, stmt, None
        if isinstance(stmt, ast.ClassDef):
            for item in stmt.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("__"):
                    if item.name not in FRAMEWORK_METHODS:
                        yield item.name, item, stmt


def _uses(tree: ast.AST) -> Counter:
    out: Counter = Counter()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            out[n.id] += 1
        elif isinstance(n, ast.Attribute):
            out[n.attr] += 1
        elif isinstance(n, ast.alias):
            out[n.name] += 1
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            out[n.value] += 1  # __all__ entries, lazy-import tables, getattr names
    return out


def shake(files: dict[str, str], keep: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Remove defs nothing in ``files`` uses (to a fixed point), then unused imports.

    Returns the new texts and ``path: name`` of everything removed.
    """
    keep = set(keep)
    removed: list[str] = []
    files = dict(files)
    while True:
        trees = {p: parse(t, p) for p, t in files.items() if p.endswith(".py")}
        total: Counter = Counter()
        for tree in trees.values():
            total.update(_uses(tree))
        changed = False
        for path, tree in trees.items():
            ed = Edits(files[path])
            for name, node, owner in _defs(tree):
                if name in keep:
                    continue
                if total[name] - _uses(node)[name] > 0:
                    continue
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                ed.lines(leading_comments(files[path], first), node.end_lineno)
                removed.append(f"{path}: {owner.name + '.' if owner else ''}{name}")
                changed = True
            if ed.items:
                files[path] = clean_blank_runs(ed.apply())
        if not changed:
            break
    for path in list(files):
        if path.endswith(".py"):
            files[path] = prune_imports(files[path], path)
    return files, removed


def prune_imports(text: str, path: str) -> str:
    """Drop imported names the module never uses (package ``__init__`` files re-export: kept)."""
    if path.endswith("__init__.py"):
        return text
    tree = parse(text, path)
    used: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            used.add(n.id)
        elif isinstance(n, ast.Attribute):
            base = n
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                used.add(base.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            used.update(re.findall(r"[A-Za-z_]\w*", n.value))  # string annotations
    ed = Edits(text)
    for stmt in ast.walk(tree):
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)) or (
            isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"
        ):
            continue
        keep = [a for a in stmt.names if (a.asname or a.name).split(".")[0] in used]
        if len(keep) == len(stmt.names):
            continue
        indent = re.match(r"\s*", text.splitlines()[stmt.lineno - 1]).group(0)
        if not keep:
            ed.lines(stmt.lineno, stmt.end_lineno, f"{indent}pass\n" if _only_stmt(tree, stmt) else "")
            continue
        names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in keep)
        if isinstance(stmt, ast.ImportFrom):
            line = f"{indent}from {'.' * stmt.level}{stmt.module or ''} import {names}\n"
        else:
            line = f"{indent}import {names}\n"
        ed.lines(stmt.lineno, stmt.end_lineno, line)
    return ed.apply()


def _only_stmt(tree: ast.Module, stmt: ast.stmt) -> bool:
    for n in ast.walk(tree):
        for attr in ("body", "orelse", "finalbody"):
            body = getattr(n, attr, None)
            if isinstance(body, list) and body == [stmt] and n is not tree:
                return True
    return False
