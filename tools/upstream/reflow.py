"""Pack argument and item lists spread over several lines into as few lines as fit.

The plugin often lays out long signatures and calls with one argument a line; upstream, the
same items are packed into lines of at most :data:`WIDTH` columns: the whole bracket on one
line when it fits, else with continuation lines aligned with the opening bracket (PEP 8), or
indented one level when that bracket sits too far right. A bracket is packed only when every
item in it is on one line, no comment is inside, and packing saves lines; a trailing comma
goes unless it makes a one-item tuple. Nothing but whitespace and that comma changes.
"""
from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass

WIDTH = 120
#: an opening bracket further right than this gets continuation lines indented one level instead
MAX_ALIGN = 48
#: separates the pieces of an implicitly joined string in an item: each keeps a line of its own
_RUN = "\0"
_LAYOUT = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT)


@dataclass
class _Group:
    first: int  # line of the opening bracket (1-based)
    last: int  # line of the closing bracket
    col: int  # column just after the opening bracket
    end_col: int  # column of the closing bracket
    items: list[str]
    tuple_comma: bool  # a one-item tuple written with its comma


def _groups(text: str) -> list[_Group]:
    """Every multi-line bracket whose items each sit on one line, with no comment inside."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    comments = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    real = [t for t in tokens if t.type not in _LAYOUT]
    lines = text.splitlines(keepends=True)
    out, stack = [], []
    for i, t in enumerate(real):
        if t.type == tokenize.OP and t.string in "([{":
            stack.append(i)
        elif t.type == tokenize.OP and t.string in ")]}" and stack:
            j = stack.pop()
            first, last = real[j].start[0], t.start[0]
            if first == last or comments & set(range(first, last + 1)) or i == j + 1:
                continue
            group = _items(real, j, i, lines)
            if group is not None:
                out.append(group)
    return out


def _items(real: list, j: int, i: int, lines: list[str]):
    """The items of the bracket from token ``j`` to its closing token ``i``, or None."""
    depth, cuts = 0, [j]
    for k in range(j + 1, i):
        s = real[k].string if real[k].type == tokenize.OP else ""
        depth += (s in "([{") - (s in ")]}")
        if depth == 0 and s == ",":
            cuts.append(k)
    cuts.append(i)
    items = []
    for a, b in zip(cuts, cuts[1:]):
        if b == a + 1:
            continue  # the empty place after a trailing comma
        start, end = real[a + 1].start, real[b - 1].end
        pieces = real[a + 1: b]
        if start[0] == end[0]:
            items.append(lines[start[0] - 1][start[1]: end[1]])
        elif all(t.type == tokenize.STRING and t.start[0] == t.end[0] for t in pieces) \
                and len({t.start[0] for t in pieces}) == len(pieces):
            items.append(_RUN.join(t.string for t in pieces))  # implicitly joined strings, one a line
        else:
            return None  # an item spanning lines
    trailing = real[i - 1].string == ","
    tuple_comma = trailing and len(items) == 1 and real[j].string == "("
    return _Group(real[j].start[0], real[i].start[0], real[j].end[1], real[i].start[1], items, tuple_comma)


def _layout(group: _Group, lines: list[str]) -> list[str] | None:
    """The packed lines of ``group``, or None when they would not fit."""
    first = lines[group.first - 1]
    head = first[: group.col]
    tail = lines[group.last - 1][group.end_col:].rstrip("\n")
    parts = [item + "," for item in group.items]
    if not group.tuple_comma:
        parts[-1] = parts[-1][:-1]
    one = head + " ".join(parts) + tail
    if len(one) <= WIDTH and _RUN not in one:
        return [one + "\n"]
    if group.col <= MAX_ALIGN:  # continuation lines aligned with the opening bracket, closed on the last
        out, current, indent = [], head, " " * group.col
        parts[-1] += tail
    elif any(_RUN in part for part in parts):
        return None
    else:  # the bracket opens a line of its own items, indented one level, and closes on a line of its own
        base = " " * (len(first) - len(first.lstrip()))
        out, current, indent = [head + "\n"], "", base + "    "
    for part in parts:
        if current in ("", head):
            current = (current or indent) + part
        elif len(current) + 1 + len(part) <= WIDTH and _RUN not in part:
            current += " " + part
        else:
            out.append(current + "\n")
            current = indent + part
        if _RUN in current:
            *done, current = current.split(_RUN)
            out += [done[0] + "\n"] + [indent + piece + "\n" for piece in done[1:]]
            current = indent + current
    out.append(current + "\n")
    if group.col > MAX_ALIGN:
        out.append(base + tail.lstrip() + "\n")
    return None if any(len(l) > WIDTH + 1 for l in out) else out


def pack_lists(text: str) -> str:
    """``text`` with its bracketed lists packed (to a fixed point)."""
    for _ in range(5):
        lines = text.splitlines(keepends=True)
        changed = False
        for group in sorted(_groups(text), key=lambda g: g.first, reverse=True):
            new = _layout(group, lines)
            if new is not None and len(new) < group.last - group.first + 1:
                lines[group.first - 1: group.last] = new
                changed = True
        text = "".join(lines)
        if not changed:
            break
    return text


def join_imports(text: str) -> str:
    """Consecutive one-line ``from X import a`` statements of the same ``X`` as one statement (when it fits)."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        prev = out[-1] if out else ""
        if line.startswith("from ") and prev.startswith("from ") and " import " in line and " import " in prev \
                and "(" not in line + prev and line.split(" import ")[0] == prev.split(" import ")[0]:
            joined = f"{prev.rstrip()}, {line.split(' import ', 1)[1]}"
            if len(joined.rstrip("\n")) <= WIDTH:
                out[-1] = joined
                continue
        out.append(line)
    return "".join(out)
