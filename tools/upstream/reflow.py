"""Pack argument and item lists written one item a line into as few lines as fit.

The plugin lays out long signatures and calls with one argument a line; upstream, the same
items are packed into lines of at most :data:`WIDTH` columns (the whole call on one line when
it fits). Only a bracket whose opening line ends with it and whose closing line starts with it
is packed, and only when every line between holds whole items ending with a comma: no
comments, no strings or brackets spanning lines; a single item only when the whole fits on one
line. Nothing else changes.
"""
from __future__ import annotations

import io
import tokenize

WIDTH = 120
_SKIP = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


def _groups(text: str) -> list[tuple[int, int]]:
    """(opening line, closing line) of every bracket that is packable (1-based)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    spanning = {l for t in tokens if t.start[0] != t.end[0] for l in range(t.start[0], t.end[0] + 1)}
    comments = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    starts: dict[int, int] = {}  # line -> bracket depth at its first token
    ends: dict[int, int] = {}  # line -> bracket depth after its last token
    stack: list[int] = []
    out = []
    real = [t for t in tokens if t.type not in _SKIP and t.type != tokenize.COMMENT]
    for i, t in enumerate(real):
        line = t.start[0]
        starts.setdefault(line, len(stack))
        if t.type == tokenize.OP and t.string in "([{":
            stack.append(i)
        elif t.type == tokenize.OP and t.string in ")]}" and stack:
            j = stack.pop()
            first, last = real[j].start[0], line
            opener_last = j + 1 < len(real) and real[j + 1].start[0] > first
            closer_first = real[i - 1].end[0] < last
            inner = range(first + 1, last)
            if (opener_last and closer_first and len(inner) >= 1
                    and not (set(range(first, last + 1)) & (spanning | comments))
                    and all(starts.get(l) == len(stack) + 1 and ends.get(l) == len(stack) + 1 for l in inner)):
                out.append((first, last))
        ends[t.end[0]] = len(stack)
    return out


def _packed(lines: list[str], first: int, last: int) -> list[str] | None:
    items = [lines[l - 1].strip() for l in range(first + 1, last)]
    if not all(item.endswith(",") for item in items[:-1]):
        return None
    items[-1] = items[-1].rstrip(",")
    opener, closer = lines[first - 1].rstrip("\n"), lines[last - 1].strip()
    one = opener + " ".join(items) + closer
    if len(one) <= WIDTH:
        return [one + "\n"]
    if len(items) < 2:
        return None
    indent = lines[first].rstrip("\n")[: len(lines[first]) - len(lines[first].lstrip())]
    packed, current = [], ""
    for item in items:
        candidate = f"{current} {item}" if current else item
        if current and len(indent) + len(candidate) > WIDTH:
            packed.append(indent + current + "\n")
            candidate = item
        current = candidate
    packed.append(indent + current + "\n")
    return [opener + "\n"] + packed + [lines[last - 1]]


def pack_lists(text: str) -> str:
    """``text`` with its one-item-a-line lists packed (to a fixed point)."""
    for _ in range(5):
        lines = text.splitlines(keepends=True)
        changed = False
        for first, last in sorted(_groups(text), reverse=True):
            new = _packed(lines, first, last)
            if new is not None and len(new) < last - first + 1:
                lines[first - 1: last] = new
                changed = True
        text = "".join(lines)
        if not changed:
            break
    return text
