"""Text-level edits of one module's source: exact substitutions, removed defs, docstrings, and the helpers
the other rules edit text with (non-overlapping replacements, list-item spans)."""
from __future__ import annotations

import ast
import re
from typing import Iterable


class ExportError(Exception):
    """The plugin source cannot be turned into upstream code (the message says where and why)."""


def parse(text: str, path: str) -> ast.Module:
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ExportError(f"{path}: the transformed text does not parse ({exc.msg}, line {exc.lineno})") from None


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


class Edits:
    """Non-overlapping text replacements applied back to front."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = _line_starts(text)
        self.items: list[tuple[int, int, str]] = []

    def off(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def lines(self, first: int, last: int, new: str = "") -> None:
        self.items.append((self.starts[first - 1], self.starts[last], new))

    def span(self, a: int, b: int, new: str = "") -> None:
        self.items.append((a, b, new))

    def apply(self) -> str:
        out, last = self.text, None
        for a, b, new in sorted(set(self.items), reverse=True):
            if last is not None and b > last:
                continue  # nested in a span already replaced
            out = out[:a] + new + out[b:]
            last = a
        return out


def leading_comments(text: str, first: int) -> int:
    """The first line of the comment block right above line ``first`` (1-based), or ``first``."""
    lines = text.splitlines()
    while first > 1 and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first


def item_span(text: str, a: int, b: int) -> tuple[int, int]:
    """Span of a list item (argument, keyword, dict entry) with its separating comma."""
    j = b
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == ",":
        j += 1
        line_start = text.rfind("\n", 0, a) + 1
        if text[line_start:a].strip() == "":  # the item sits on its own line(s)
            k = j
            while k < len(text) and text[k] in " \t":
                k += 1
            if k < len(text) and text[k] == "\n":
                return line_start, k + 1
        while j < len(text) and text[j] == " ":
            j += 1
        return a, j
    i = a
    while i > 0 and text[i - 1] in " \t\n":
        i -= 1
    if i > 0 and text[i - 1] == ",":
        return i - 1, b
    return a, b


def clean_blank_runs(text: str) -> str:
    return re.sub(r"\n{4,}", "\n\n\n", text)


def apply_subs(text: str, subs: Iterable[tuple[str, str]], path: str) -> str:
    """Exact substitutions of every occurrence; each must match (else the plugin changed under the table)."""
    for old, new in subs:
        if old not in text:
            raise ExportError(f"{path}: expected {old!r} in the plugin module, it is not there; "
                              f"update the row's subs in tools/upstream/layout.py")
        text = text.replace(old, new)
    return text


def drop_defs(text: str, qualnames: Iterable[str], path: str) -> str:
    """Remove the functions, classes or methods named (``f``, ``Class``, ``Class.method``); each must exist."""
    wanted = set(qualnames)
    if not wanted:
        return text
    tree = parse(text, path)
    ed = Edits(text)
    found = set()
    for stmt in tree.body:
        items = [(None, stmt)] + ([(stmt.name, s) for s in stmt.body] if isinstance(stmt, ast.ClassDef) else [])
        for owner, node in items:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            qual = f"{owner}.{node.name}" if owner else node.name
            if qual in wanted:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                ed.lines(leading_comments(text, first), node.end_lineno)
                found.add(qual)
    if wanted - found:
        raise ExportError(f"{path}: no def {sorted(wanted - found)} to drop; update the row in tools/upstream/layout.py")
    return clean_blank_runs(ed.apply())


def drop_all_lists(text: str, path: str) -> str:
    """Remove a module-level ``__all__`` (upstream modules do not keep one; it would keep dead names alive)."""
    tree = parse(text, path)
    ed = Edits(text)
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                ed.lines(stmt.lineno, stmt.end_lineno)
    return ed.apply()


def short_docstrings(text: str, path: str) -> str:
    """Cut every docstring to its first paragraph: the summary stays, the long notes go."""
    tree = parse(text, path)
    lines = text.splitlines(keepends=True)
    ed = Edits(text)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
            continue
        doc = node.body[0]
        if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
            continue
        seg = lines[doc.lineno - 1: doc.end_lineno]
        opening = re.match(r"\s*[rRuU]?(\"\"\"|''')", seg[0])
        cut = next((i for i in range(1, len(seg) - 1) if not seg[i].strip()), None)
        if opening is None or cut is None or not "".join(seg[:cut]).strip().strip(opening.group(1)).strip():
            continue
        first = seg[:cut]
        first[-1] = first[-1].rstrip() + opening.group(1) + "\n"
        ed.lines(doc.lineno, doc.end_lineno, "".join(first))
    return ed.apply()


def replace_docstring(text: str, doc: str, path: str) -> str:
    tree = parse(text, path)
    first = tree.body[0] if tree.body else None
    new = f'"""{doc}"""\n'
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = text.splitlines(keepends=True)
        return "".join(lines[: first.lineno - 1]) + new + "".join(lines[first.end_lineno:])
    return new + text
