"""Stripping names upstream does not offer, by AST rules a reviewer can read.

A statement, parameter, keyword argument, tuple item or dict entry that names a stripped name is
removed, and so is whatever then reads a local that no longer exists. A stripped option counts as
unset: ``if option is None:`` keeps its body, ``is not None`` its ``else``.
"""
from __future__ import annotations

import ast
import builtins
import re
from typing import Iterable, Optional

from .textedit import Edits, ExportError, item_span, leading_comments, parse


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


class _StripPass:
    """One pass of the strip over a module: marks removals in ``self.ed``, applied by :meth:`run`."""

    def __init__(self, text: str, tree: ast.Module, names: set[str], path: str) -> None:
        self.text, self.tree, self.names, self.path = text, tree, names, path
        self.ed = Edits(text)
        self.builtin_names = set(dir(builtins)) | {"__name__", "__file__", "__package__"}
        self.module_level = _module_names(tree)

    def run(self) -> str:
        self.visit_body(self.tree.body, set())
        return self.ed.apply()

    def visit_body(self, body: list[ast.stmt], scope_unbound: set[str], enclosing: frozenset = frozenset()) -> bool:
        """Mark removals in ``body``; True when every statement of it goes."""
        removed = sum(self._visit_stmt(stmt, scope_unbound, enclosing) for stmt in body)
        # a function left with its docstring alone counts as emptied
        kept = [b for b in body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                                        and isinstance(b.value.value, str))]
        return removed > 0 and removed >= len(kept)

    def _visit_stmt(self, stmt: ast.stmt, scope_unbound: set[str], enclosing: frozenset) -> bool:
        """Mark what goes of ``stmt``; True when the whole statement goes."""
        names, ed, text = self.names, self.ed, self.text
        items = _stripped_tuple_items(stmt, names)
        if items:  # `return x, <stripped>` -> `return x`; `x, <stripped> = f()` -> `x = f()`
            for e in items:
                ed.span(*item_span(text, ed.off(e.lineno, e.col_offset), ed.off(e.end_lineno, e.end_col_offset)))
            return False  # the rest of the statement goes through the next pass
        head, loads = set(), set()
        for h in _header_nodes(stmt):
            head |= _refs(h, names, names)
            loads |= _refs(h, names | scope_unbound, names)
        is_none = _none_test(stmt, names) if isinstance(stmt, ast.If) else None
        if is_none is not None:
            # a stripped option is off (None) upstream: `if x is None: A else: B` keeps A, `is not None` B
            kept = stmt.body if is_none else stmt.orelse
            if not all(isinstance(k, ast.Pass) for k in kept):  # a kept `pass` alone goes with the `if`
                ed.lines(stmt.lineno, stmt.end_lineno, _dedented(text, stmt, kept))
                return False  # what the kept branch itself names goes in the next pass
            ed.lines(leading_comments(text, stmt.lineno), stmt.end_lineno)
            return True
        if head & names or loads & scope_unbound:
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
            ed.lines(leading_comments(text, first), stmt.end_lineno)
            return True
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._visit_function(stmt, scope_unbound, enclosing)
            return False
        if isinstance(stmt, ast.If) and self._emptied(stmt.body):
            return self._visit_emptied_if(stmt, scope_unbound, enclosing)
        for inner_body in _bodies(stmt):  # not `body`: the caller counts the statements of `body`
            if self.visit_body(inner_body, scope_unbound, enclosing):
                _pass_for(ed, text, inner_body)
        if not isinstance(stmt, ast.ClassDef):
            self.visit_calls(stmt, names | scope_unbound)
        return False

    def _visit_function(self, fn: ast.FunctionDef, scope_unbound: set[str], enclosing: frozenset) -> None:
        ed, text = self.ed, self.text
        self.visit_args(fn)
        if fn.returns is not None and _refs(fn.returns) & self.names:  # the annotation goes, not the def
            a = ed.off(fn.returns.lineno, fn.returns.col_offset)
            arrow = text.rfind("->", 0, a)
            while text[arrow - 1] in " \t":
                arrow -= 1
            ed.span(arrow, ed.off(fn.returns.end_lineno, fn.returns.end_col_offset))
        loaded = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        bound = _bound_names(fn)
        # names of enclosing functions are bound for a nested one (closures)
        unbound = loaded - bound - enclosing - self.module_level - self.builtin_names
        if self.visit_body(fn.body, scope_unbound | unbound, enclosing | bound):
            raise ExportError(f"{self.path}:{fn.lineno}: stripping {sorted(self.names)} empties {fn.name}()")

    def _visit_emptied_if(self, stmt: ast.If, scope_unbound: set[str], enclosing: frozenset) -> bool:
        """An ``if`` whose body the strip empties: its ``elif`` or ``else`` takes its place (True: all of it goes).

        The test is dropped, not negated: a branch made only of stripped code is taken as the stripped
        feature's own branch (``if settings.method == "atp":``), which upstream never enters. A branch
        that also runs when the feature is off would need ``if not <test>:`` instead; the plugin has none.
        """
        ed, text = self.ed, self.text
        if stmt.orelse and len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
            nxt = stmt.orelse[0]
            line = text.splitlines(keepends=True)[nxt.lineno - 1]
            if not line.lstrip().startswith("elif"):
                raise ExportError(f"{self.path}:{stmt.lineno}: cannot promote the else branch")
            ed.lines(stmt.lineno, nxt.lineno, line.replace("elif", "if", 1))
            if not self._emptied(nxt.body):  # else the next pass promotes again
                for b in _bodies(nxt):
                    self.visit_body(b, scope_unbound, enclosing)
            return False
        if not stmt.orelse:
            ed.lines(stmt.lineno, stmt.end_lineno)
            return True
        # `if x: <gone> else: B` -> B, one indentation level up
        ed.lines(stmt.lineno, stmt.end_lineno, _dedented(text, stmt, stmt.orelse))
        return False

    def _emptied(self, body: list[ast.stmt]) -> bool:
        for stmt in body:
            head = set()
            for h in _header_nodes(stmt):
                head |= _refs(h)
            if not head & self.names:
                return False
        return bool(body)

    def visit_args(self, fn: ast.FunctionDef) -> None:
        ed, args = self.ed, fn.args
        positional = args.posonlyargs + args.args
        defaults = dict(zip([a.arg for a in positional][len(positional) - len(args.defaults):], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        for a in positional + args.kwonlyargs:
            if a.arg in self.names:
                end = defaults[a.arg] if a.arg in defaults else a
                ed.span(*item_span(self.text, ed.off(a.lineno, a.col_offset), ed.off(end.end_lineno, end.end_col_offset)))

    def visit_calls(self, stmt: ast.stmt, names: set[str]) -> None:
        """Arguments, keywords, literal items and dict entries in ``stmt`` that name ``names`` (positional
        arguments: the stripped names themselves)."""
        ed, text = self.ed, self.text

        def drop(a: ast.AST, b: ast.AST) -> None:
            ed.span(*item_span(text, ed.off(a.lineno, a.col_offset), ed.off(b.end_lineno, b.end_col_offset)))

        for n in ast.walk(stmt):
            if isinstance(n, ast.Call):
                for arg in n.args:
                    if isinstance(arg, ast.Name) and arg.id in self.names:
                        drop(arg, arg)
                for kw in n.keywords:
                    if kw.arg in names or (_refs(kw.value) & names):
                        drop(kw, kw)
            elif isinstance(n, (ast.Tuple, ast.List, ast.Set)):
                for e in n.elts:
                    if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in names:
                        drop(e, e)
            elif isinstance(n, ast.Dict):
                for k, v in zip(n.keys, n.values):
                    if isinstance(k, ast.Constant) and (k.value in names or (_refs(v) & names)):
                        drop(k, v)


def _pass_for(ed: Edits, text: str, body: list[ast.stmt]) -> None:
    """Replace every statement of ``body`` with one ``pass`` at its indentation (a body may not be empty)."""
    indent = re.match(r"\s*", text.splitlines()[body[0].lineno - 1]).group(0)
    ed.lines(body[0].lineno, body[-1].end_lineno, f"{indent}pass\n")


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
        tree = parse(text, path)
        new = _StripPass(text, tree, names, path).run()
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
    tree = parse(text, path)
    ed = Edits(text)
    gone: dict[int, ast.stmt] = {}  # the statements that go whole, by id
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
                gone[id(stmt)] = stmt
    # a body whose every statement goes becomes `pass` (a loop body or `try` left empty does not parse)
    for node in ast.walk(tree):
        for body in _bodies(node) if isinstance(node, ast.stmt) else []:
            if all(id(b) in gone for b in body):
                _pass_for(ed, text, body)
                for b in body:
                    del gone[id(b)]
    for stmt in gone.values():
        ed.lines(stmt.lineno, stmt.end_lineno)
    return ed.apply()
