"""Fixed-format text for the report: numbers, markdown tables and CSV bytes.

Every number goes through one of these so the same input always prints the same bytes.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Optional, Sequence

from .stats import Estimate, pct


def fmt_est(e: Estimate, signed: bool = False) -> str:
    """'12.3 [4.5, 20.1]' (percent), or '–' without a value."""
    if e.n == 0 or e.mean is None:
        return "–"
    return f"{pct(e.mean, signed)} [{pct(e.lo, signed)}, {pct(e.hi, signed)}]"


def num(x: Optional[float], digits: int = 4) -> str:
    """A CSV number ('' when missing)."""
    return "" if x is None else f"{x:.{digits}f}"


def secs(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}"


def gib(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def safe_name(name: str) -> str:
    """A method name usable in a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


__all__ = ["csv_bytes", "fmt_est", "gib", "md_table", "num", "safe_name", "secs"]
