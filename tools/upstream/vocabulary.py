"""Checks of the exported text: no plugin vocabulary, no name read but defined nowhere, no emptied block;
and the rewriting of plugin references in comments and docstrings."""
from __future__ import annotations

import ast
import builtins
import re
from typing import Optional

from .textedit import parse


FORBIDDEN = (
    (re.compile(r"memla[_-]plugin|memla-setup|memla-edit|memla_mkeb|memla-mkeb", re.I), "a plugin name"),
    (re.compile(r"\bDESIGN\b"), "the plugin's design notes"),
    (re.compile(r"\bissues? \d+"), "a plugin issue number"),
    (re.compile(r"\bharness\b|\bbenchmarks?/|dev_scale_sweep", re.I), "the plugin's benchmark"),
    (re.compile(r"\bplugin\b", re.I), "the word plugin"),
    (re.compile(r"2-core|this (machine|CPU)|pandas-sns|GGUF|embedded default", re.I), "this project's set-up"),
    (re.compile(r"\bLAST_EDIT_STATS\b"), "the plugin's old stats global"),
)


def check_sound(path: str, text: str) -> list[str]:
    """``path: what`` for names read but defined nowhere, functions or blocks a strip left empty, and context
    managers it left without a ``yield``."""
    import symtable

    problems = []
    table = symtable.symtable(text, path, "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    defined |= set(dir(builtins)) | {"__file__", "__name__", "__package__"}
    todo = [table]
    while todo:
        t = todo.pop()
        todo.extend(t.get_children())
        for sym in t.get_symbols():
            if sym.is_global() and sym.is_referenced() and not sym.is_declared_global() \
                    and sym.get_name() not in defined:
                problems.append(f"{path}: {t.get_name()} reads {sym.get_name()}, defined nowhere")
    for n in ast.walk(parse(text, path)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.For, ast.If, ast.While, ast.With)):
            body = [b for b in n.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
            if all(isinstance(b, ast.Pass) for b in body):
                problems.append(f"{path}:{n.lineno}: a block with nothing left in it")
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_context_manager(n) and not _yields(n):
            # a strip that removes the statement yielding a stripped value leaves a generator that is none
            problems.append(f"{path}:{n.lineno}: context manager {n.name}() has no yield left")
    return problems


def _is_context_manager(fn: ast.AST) -> bool:
    """Decorated with ``contextmanager`` or ``asynccontextmanager`` (bare or as ``contextlib.<name>``)."""
    names = {"contextmanager", "asynccontextmanager"}
    return any((isinstance(d, ast.Name) and d.id in names) or (isinstance(d, ast.Attribute) and d.attr in names)
               for d in fn.decorator_list)


def _yields(fn: ast.AST) -> bool:
    """Whether ``fn`` itself (not a function nested in it) yields."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(n))
    return False


def check_vocabulary(path: str, text: str) -> list[str]:
    """``path:line: what`` for every line that speaks the plugin's vocabulary."""
    problems = []
    for i, line in enumerate(text.splitlines(), 1):
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                problems.append(f"{path}:{i}: {what}: {line.strip()[:100]}")
    return problems


def clean_references(text: str, mapping: Optional[dict] = None) -> str:
    """Plugin module names become upstream ones, design-note references README ones; issue numbers go."""
    if mapping:
        def mention(m: re.Match) -> str:
            parts = m.group(0).split(".")
            for cut in range(len(parts), 0, -1):
                prefix = ".".join(parts[:cut])
                if prefix in mapping:
                    return ".".join([mapping[prefix]] + parts[cut:])
            return m.group(0)

        text = re.sub(r"\bmemla_plugin(?:\.\w+)*", mention, text)
    text = re.sub(r"\s*\([^()\n]*memla-edit[^()\n]*\)", "", text)
    text = re.sub(r"DESIGN (§[\d.]+)", r"README \1", text)
    text = re.sub(r"\s*\(issue \d+(?: item \d+)?\)", "", text)
    text = re.sub(r",? issue \d+(?: item \d+)?", "", text)
    return text
