"""Turn the plugin's MEMLA modules into EasyEdit source, by rules a reviewer can read.

For each module of the export (see :mod:`.layout`) the text goes through, in order:

1. ``subs`` and the strip of names upstream does not offer (:func:`strip_names`): a
   statement, parameter, keyword argument or dict entry that names one of them is removed,
   and so is whatever then reads a local that no longer exists;
2. import rewriting: ``from memla_plugin.x import y`` and ``import_module("memla_plugin.x")``
   become relative imports to the module's place upstream (from the table);
3. dead code removal (:func:`shake`): functions, classes, methods and module constants that
   nothing in the export uses, then imports nothing uses;
4. the vocabulary check (:func:`check_vocabulary`): no plugin names, design-note or issue
   references, nothing about this project's machines.

Anything the rules cannot handle raises :class:`ExportError` naming the file and line.
"""
from __future__ import annotations

import ast
import builtins
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .layout import MODULES, Row

PLUGIN_PKG = "memla_plugin"

#: methods frameworks call by name (torch modules and autograd functions, transformers caches)
FRAMEWORK_METHODS = {"forward", "backward", "update", "extra_repr", "get_seq_length", "get_mask_sizes"}


class ExportError(Exception):
    """The plugin source cannot be turned into upstream code (the message says where and why)."""


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


# ---------------------------------------------------------------------------- discovery
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


def _is_plugin(name: str) -> bool:
    return name == PLUGIN_PKG or name.startswith(PLUGIN_PKG + ".")


def plugin_imports(module: SourceModule, text: Optional[str] = None) -> set[str]:
    """Plugin modules ``module`` imports (statements anywhere, ``import_module`` literals)."""
    text = module.path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(text, filename=str(module.path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            absolute = resolve_from(module, node.level, node.module)
            if _is_plugin(absolute):
                found.add(absolute)
                for alias in node.names:
                    try:
                        module_file(f"{absolute}.{alias.name}")
                    except ExportError:
                        continue
                    found.add(f"{absolute}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if _is_plugin(a.name)}
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            lit = node.args[0]
            if isinstance(lit, ast.Constant) and isinstance(lit.value, str):
                if _is_plugin(lit.value):
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


# ---------------------------------------------------------------------------- text helpers
def _line_starts(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


class _Edits:
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


def _leading_comments(text: str, first: int) -> int:
    """The first line of the comment block right above line ``first`` (1-based), or ``first``."""
    lines = text.splitlines()
    while first > 1 and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first


def _item_span(text: str, a: int, b: int) -> tuple[int, int]:
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


# ---------------------------------------------------------------------------- strip
def _refs(node: ast.AST, names: Optional[set] = None, positional: frozenset = frozenset()) -> set[str]:
    """Every identifier a node mentions: names, attributes, keywords, parameters, imports.

    With ``names``, keyword arguments and dict entries that mention them are left out: the
    strip removes those items, not the statement around them; so are positional arguments
    that are a bare name of ``positional`` (the parameter they fill is stripped too).
    """
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if names is not None and _removable_item(n, names):
            continue
        if positional and isinstance(n, ast.Call):
            stack.extend([n.func] + [a for a in n.args if not (isinstance(a, ast.Name) and a.id in positional)]
                         + list(n.keywords))
            continue
        if names is not None and isinstance(n, (ast.Tuple, ast.List, ast.Set)):
            # a string naming a stripped option is an item of the literal: the item goes, not the statement
            stack.extend(e for e in n.elts if not (isinstance(e, ast.Constant) and e.value in names))
            continue
        if names is not None and isinstance(n, ast.Dict):
            for k, v in zip(n.keys, n.values):
                if not (isinstance(k, ast.Constant) and (k.value in names or _refs(v) & names)):
                    stack.extend([x for x in (k, v) if x is not None])
            continue
        stack.extend(ast.iter_child_nodes(n))
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.keyword) and n.arg:
            out.add(n.arg)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
            out.add(n.name.split(".")[-1])
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            out.add(n.value)
    return out


def _removable_item(n: ast.AST, names: set) -> bool:
    if isinstance(n, ast.keyword):
        return n.arg in names or bool(_refs(n.value) & names)
    return False


def _header_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """The parts of a statement outside its nested bodies."""
    if isinstance(stmt, (ast.If, ast.While)):
        return [stmt.test]
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return [stmt.target, stmt.iter]
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return list(stmt.items)
    if isinstance(stmt, ast.Try):
        return [h.type for h in stmt.handlers if h.type is not None]
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(stmt.decorator_list) + [ast.Name(id=stmt.name, ctx=ast.Store())]
    return [stmt]


def _bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    out = []
    for attr in ("body", "orelse", "finalbody"):
        body = getattr(stmt, attr, None)
        if body:
            out.append(body)
    for h in getattr(stmt, "handlers", []) or []:
        out.append(h.body)
    return out


def _bound_names(fn: ast.AST) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            out.update(n.names)
    return out


def _module_names(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for stmt in tree.body:
        for n in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else [stmt]:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                out.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(n.name)
            elif isinstance(n, ast.alias):
                out.add((n.asname or n.name).split(".")[0])
    return out


def _strip_pass(text: str, tree: ast.Module, names: set[str], path: str) -> str:
    ed = _Edits(text)
    stripped = names
    builtin_names = set(dir(builtins)) | {"__name__", "__file__", "__package__"}
    module_level = _module_names(tree)

    def visit_body(body: list[ast.stmt], scope_unbound: set[str], enclosing: frozenset = frozenset()) -> bool:
        """Mark removals in ``body``; True when every statement of it goes."""
        removed = 0
        for stmt in body:
            items = _stripped_tuple_items(stmt, names)
            if items:  # `return x, <stripped>` -> `return x`; `x, <stripped> = f()` -> `x = f()`
                for e in items:
                    ed.span(*_item_span(text, ed.off(e.lineno, e.col_offset), ed.off(e.end_lineno, e.end_col_offset)))
                continue  # the rest of the statement goes through the next pass
            head = set()
            for h in _header_nodes(stmt):
                head |= _refs(h, names, names)
            gone = names | scope_unbound
            loads = set()
            for h in _header_nodes(stmt):
                loads |= _refs(h, gone, names)
            is_none = _none_test(stmt, names) if isinstance(stmt, ast.If) else None
            if is_none is not None:
                # a stripped option is off (None) upstream: `if x is None: A else: B` keeps A, `is not None` B
                kept = stmt.body if is_none else stmt.orelse
                if kept:
                    ed.lines(stmt.lineno, stmt.end_lineno, _dedented(text, stmt, kept))
                else:
                    ed.lines(_leading_comments(text, stmt.lineno), stmt.end_lineno)
                    removed += 1
                continue  # what the kept branch itself names goes in the next pass
            if head & names or loads & scope_unbound:
                ed.lines(_leading_comments(text, stmt.lineno if not getattr(stmt, "decorator_list", None)
                                           else min(d.lineno for d in stmt.decorator_list)), stmt.end_lineno)
                removed += 1
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit_args(stmt)
                if stmt.returns is not None and _refs(stmt.returns) & names:  # the annotation goes, not the def
                    a = ed.off(stmt.returns.lineno, stmt.returns.col_offset)
                    arrow = text.rfind("->", 0, a)
                    while text[arrow - 1] in " \t":
                        arrow -= 1
                    ed.span(arrow, ed.off(stmt.returns.end_lineno, stmt.returns.end_col_offset))
                loaded = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                bound = _bound_names(stmt)
                # names of enclosing functions are bound for a nested one (closures)
                unbound = loaded - bound - enclosing - module_level - builtin_names
                if visit_body(stmt.body, scope_unbound | unbound, enclosing | bound):
                    raise ExportError(f"{path}:{stmt.lineno}: stripping {sorted(names)} empties {stmt.name}()")
                continue
            if isinstance(stmt, ast.If):
                emptied = _emptied(stmt.body, scope_unbound)
                if emptied:
                    if stmt.orelse and len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
                        nxt = stmt.orelse[0]
                        line = text.splitlines(keepends=True)[nxt.lineno - 1]
                        if not line.lstrip().startswith("elif"):
                            raise ExportError(f"{path}:{stmt.lineno}: cannot promote the else branch")
                        ed.lines(stmt.lineno, nxt.lineno, line.replace("elif", "if", 1))
                        if not _emptied(nxt.body, scope_unbound):  # else the next pass promotes again
                            for b in _bodies(nxt):
                                visit_body(b, scope_unbound, enclosing)
                        continue
                    if not stmt.orelse:
                        ed.lines(stmt.lineno, stmt.end_lineno)
                        removed += 1
                        continue
                    # `if x: <gone> else: B` -> B, one indentation level up
                    src = text.splitlines(keepends=True)
                    body_lines = src[stmt.orelse[0].lineno - 1: stmt.orelse[-1].end_lineno]
                    depth = len(src[stmt.lineno - 1]) - len(src[stmt.lineno - 1].lstrip())
                    cut = len(body_lines[0]) - len(body_lines[0].lstrip()) - depth
                    ed.lines(stmt.lineno, stmt.end_lineno,
                             "".join(l[cut:] if l[:cut].strip() == "" else l for l in body_lines))
                    continue
            for inner_body in _bodies(stmt):  # not `body`: the return below counts the statements of `body`
                if visit_body(inner_body, scope_unbound, enclosing):
                    indent = re.match(r"\s*", text.splitlines()[inner_body[0].lineno - 1]).group(0)
                    ed.lines(inner_body[0].lineno, inner_body[-1].end_lineno, f"{indent}pass\n")
            if not isinstance(stmt, ast.ClassDef):
                visit_calls(stmt, names | scope_unbound)
        # a function left with its docstring alone counts as emptied
        kept = [b for b in body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                                        and isinstance(b.value.value, str))]
        return removed > 0 and removed >= len(kept)

    def _emptied(body, unbound) -> bool:
        for stmt in body:
            head = set()
            for h in _header_nodes(stmt):
                head |= _refs(h)
            if not head & names:
                return False
        return bool(body)

    def visit_args(fn) -> None:
        args = fn.args
        positional = args.posonlyargs + args.args
        defaults = dict(zip([a.arg for a in positional][len(positional) - len(args.defaults):], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        for a in positional + args.kwonlyargs:
            if a.arg in names:
                end = defaults[a.arg] if a.arg in defaults else a
                s = ed.off(a.lineno, a.col_offset)
                e = ed.off(end.end_lineno, end.end_col_offset)
                ed.span(*_item_span(text, s, e))

    def visit_calls(stmt, names=names) -> None:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Call):
                for arg in n.args:
                    if isinstance(arg, ast.Name) and arg.id in stripped:
                        s = ed.off(arg.lineno, arg.col_offset)
                        ed.span(*_item_span(text, s, ed.off(arg.end_lineno, arg.end_col_offset)))
                for kw in n.keywords:
                    if kw.arg in names or (_refs(kw.value) & names):
                        s = ed.off(kw.lineno, kw.col_offset)
                        e = ed.off(kw.end_lineno, kw.end_col_offset)
                        ed.span(*_item_span(text, s, e))
            elif isinstance(n, (ast.Tuple, ast.List, ast.Set)):
                for e in n.elts:
                    if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in names:
                        ed.span(*_item_span(text, ed.off(e.lineno, e.col_offset), ed.off(e.end_lineno, e.end_col_offset)))
            elif isinstance(n, ast.Dict):
                for k, v in zip(n.keys, n.values):
                    if isinstance(k, ast.Constant) and (k.value in names or (_refs(v) & names)):
                        s = ed.off(k.lineno, k.col_offset)
                        e = ed.off(v.end_lineno, v.end_col_offset)
                        ed.span(*_item_span(text, s, e))

    visit_body(tree.body, set())
    return ed.apply()


def _stripped_tuple_items(stmt: ast.stmt, names: set[str]) -> list[ast.expr]:
    """Bare stripped names in a returned tuple or a tuple assigned to, when nothing else in the
    statement names a stripped name and some element stays."""
    if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Tuple):
        tup, rest = stmt.value, []
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Tuple):
        tup, rest = stmt.targets[0], [stmt.value]
    else:
        return []
    gone = [e for e in tup.elts if isinstance(e, ast.Name) and e.id in names]
    kept = [e for e in tup.elts if not (isinstance(e, ast.Name) and e.id in names)]
    if not gone or not kept or any(_refs(x) & names for x in kept + rest):
        return []
    return gone


def _none_test(stmt: ast.If, names: set[str]) -> Optional[bool]:
    """The value of an ``if`` test on a stripped option, which upstream is never set, else None.

    ``<option> is None``, ``!= x`` and ``not in xs`` are true; ``is not None``, ``== x``, ``in xs`` and
    the option itself are false; ``not`` inverts. A test that reads anything else stripped is unknown.
    """
    test, negate = stmt.test, False
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, negate = test.operand, not negate
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if _refs(right) & names:
            return None
        if isinstance(op, (ast.Is, ast.IsNot)) and not (isinstance(right, ast.Constant) and right.value is None):
            return None
        value = isinstance(op, (ast.Is, ast.NotEq, ast.NotIn)) if isinstance(
            op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq, ast.In, ast.NotIn)) else None
    else:
        left, value = test, False
    named = left.id if isinstance(left, ast.Name) else left.attr if isinstance(left, ast.Attribute) else None
    if value is None or named not in names:
        return None
    if isinstance(left, ast.Attribute) and _refs(left.value) & names:
        return None
    return value != negate


def _dedented(text: str, stmt: ast.If, kept: list[ast.stmt]) -> str:
    """The lines of ``kept`` (a branch of ``stmt``) at the indentation of ``stmt`` (an ``elif`` becomes ``if``)."""
    src = text.splitlines(keepends=True)
    first = min([kept[0].lineno] + [d.lineno for d in getattr(kept[0], "decorator_list", [])])
    lines = src[first - 1: kept[-1].end_lineno]
    depth = len(src[stmt.lineno - 1]) - len(src[stmt.lineno - 1].lstrip())
    if len(kept) == 1 and isinstance(kept[0], ast.If) and lines[0].lstrip().startswith("elif"):
        return " " * depth + lines[0].lstrip().replace("elif", "if", 1) + "".join(lines[1:])
    cut = len(lines[0]) - len(lines[0].lstrip()) - depth
    return "".join(l[cut:] if l[:cut].strip() == "" else l for l in lines)


def strip_names(text: str, names: Iterable[str], path: str = "<module>") -> str:
    """Remove everything that names one of ``names``, and what then reads a vanished local."""
    names = set(names)
    if not names:
        return text
    for _ in range(10):
        tree = _parse(text, path)
        new = _strip_pass(text, tree, names, path)
        new = _drop_unread_locals(new, path)
        if new == text:
            return text
        text = new
    raise ExportError(f"{path}: stripping {sorted(names)} did not settle")


_PURE_CALLS = {"min", "max", "len", "sorted", "list", "dict", "set", "tuple", "int", "float", "str", "bool"}
#: clock reads: a timer started for a statement a strip removed goes with it
_PURE_METHODS = {"perf_counter", "monotonic"}


def _drop_unread_locals(text: str, path: str) -> str:
    """Remove ``x = <pure expression>`` in functions that never read ``x`` (left over by a strip)."""
    tree = _parse(text, path)
    ed = _Edits(text)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        loaded = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        for stmt in ast.walk(fn):
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if len(targets) != 1 or not isinstance(targets[0], ast.Name) or targets[0].id in loaded:
                    continue
                value = stmt.value
                calls = [n for n in ast.walk(value)] if value is not None else []
                if any(isinstance(c, ast.Call) and not (isinstance(c.func, ast.Name) and c.func.id in _PURE_CALLS)
                       and not (isinstance(c.func, ast.Attribute) and c.func.attr in _PURE_METHODS)
                       for c in calls):
                    if isinstance(stmt, ast.Assign) and isinstance(value, ast.Call):  # `x = f(...)` -> `f(...)`
                        ed.span(ed.off(stmt.lineno, stmt.col_offset), ed.off(value.lineno, value.col_offset))
                    continue
                ed.lines(stmt.lineno, stmt.end_lineno)
    return ed.apply()


def _parse(text: str, path: str) -> ast.Module:
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ExportError(f"{path}: the transformed text does not parse ({exc.msg}, line {exc.lineno})") from None


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
    tree = _parse(text, path)
    ed = _Edits(text)
    found = set()
    for stmt in tree.body:
        items = [(None, stmt)] + ([(stmt.name, s) for s in stmt.body] if isinstance(stmt, ast.ClassDef) else [])
        for owner, node in items:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            qual = f"{owner}.{node.name}" if owner else node.name
            if qual in wanted:
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                ed.lines(_leading_comments(text, first), node.end_lineno)
                found.add(qual)
    if wanted - found:
        raise ExportError(f"{path}: no def {sorted(wanted - found)} to drop; update the row in tools/upstream/layout.py")
    return _clean_blank_runs(ed.apply())


def drop_all_lists(text: str, path: str) -> str:
    """Remove a module-level ``__all__`` (upstream modules do not keep one; it would keep dead names alive)."""
    tree = _parse(text, path)
    ed = _Edits(text)
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                ed.lines(stmt.lineno, stmt.end_lineno)
    return ed.apply()


# ---------------------------------------------------------------------------- imports
def upstream_name(path: str) -> str:
    """``easyeditor/models/memla/neurons/__init__.py`` -> ``easyeditor.models.memla.neurons``."""
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def relative_spec(from_package: str, target: str) -> str:
    """``from <spec> import`` text that reaches ``target`` from inside ``from_package``."""
    here, there = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def rewrite_imports(module: SourceModule, text: str, mapping: dict[str, str],
                    up_is_package: Optional[bool] = None) -> str:
    """Plugin imports -> relative imports at the upstream places given by ``mapping``.

    ``up_is_package``: whether the module's upstream file is a package ``__init__`` (default:
    as in the plugin; a plugin package merged into one upstream module is not).
    """
    tree = _parse(text, str(module.path))
    up_self = mapping[module.name]
    up_package = up_self if (module.is_package if up_is_package is None else up_is_package) \
        else up_self.rpartition(".")[0]
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
              if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    ed = _Edits(text)
    stmts = {(n.lineno, n.col_offset): n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_is_plugin(a.name) for a in node.names):
            raise ExportError(f"{module.path}:{node.lineno}: `import memla_plugin...` cannot become a relative import")
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "from" and tok.start in stmts:
            node = stmts[tok.start]
            absolute = resolve_from(module, node.level, node.module)
            if not _is_plugin(absolute):
                continue
            if absolute not in mapping:
                raise ExportError(f"{module.path}:{node.lineno}: imports {absolute}, which the export does not hold")
            j = i + 1
            while not (tokens[j].type == tokenize.NAME and tokens[j].string == "import"):
                j += 1
            a = ed.off(*tokens[i + 1].start)
            b = ed.off(*tokens[j - 1].end)
            ed.span(a, b, relative_spec(up_package, mapping[absolute]))
        elif (tok.type == tokenize.STRING and i >= 2 and tokens[i - 1].string == "("
              and tokens[i - 2].string == "import_module"):
            literal = ast.literal_eval(tok.string)
            if isinstance(literal, str) and _is_plugin(literal):
                if literal not in mapping:
                    raise ExportError(f"{module.path}:{tok.start[0]}: import_module({literal!r}) is not exported")
                spec = relative_spec(up_package, mapping[literal])
                ed.span(ed.off(*tok.start), ed.off(*tok.end), f'"{spec}", __package__')
    out = ed.apply()
    for node in ast.walk(_parse(out, str(module.path))):
        if isinstance(node, ast.ImportFrom) and node.module and _is_plugin(node.module):
            raise ExportError(f"{module.path}: still imports {node.module}")
    return out


# ---------------------------------------------------------------------------- docstrings
def short_docstrings(text: str, path: str) -> str:
    """Cut every docstring to its first paragraph: the summary stays, the long notes go."""
    tree = _parse(text, path)
    lines = text.splitlines(keepends=True)
    ed = _Edits(text)
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
    tree = _parse(text, path)
    first = tree.body[0] if tree.body else None
    new = f'"""{doc}"""\n'
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = text.splitlines(keepends=True)
        return "".join(lines[: first.lineno - 1]) + new + "".join(lines[first.end_lineno:])
    return new + text


# ---------------------------------------------------------------------------- dead code
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
        trees = {p: _parse(t, p) for p, t in files.items() if p.endswith(".py")}
        total: Counter = Counter()
        for tree in trees.values():
            total.update(_uses(tree))
        changed = False
        for path, tree in trees.items():
            ed = _Edits(files[path])
            for name, node, owner in _defs(tree):
                if name in keep:
                    continue
                if total[name] - _uses(node)[name] > 0:
                    continue
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                ed.lines(_leading_comments(files[path], first), node.end_lineno)
                removed.append(f"{path}: {owner.name + '.' if owner else ''}{name}")
                changed = True
            if ed.items:
                files[path] = _clean_blank_runs(ed.apply())
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
    tree = _parse(text, path)
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
    ed = _Edits(text)
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


def _clean_blank_runs(text: str) -> str:
    return re.sub(r"\n{4,}", "\n\n\n", text)


# ---------------------------------------------------------------------------- vocabulary
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
    """``path: what`` for names read but defined nowhere, and functions or blocks a strip left empty."""
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
    for n in ast.walk(_parse(text, path)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.For, ast.If, ast.While, ast.With)):
            body = [b for b in n.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
            if all(isinstance(b, ast.Pass) for b in body):
                problems.append(f"{path}:{n.lineno}: a block with nothing left in it")
    return problems


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
