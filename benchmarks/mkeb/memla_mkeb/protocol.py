"""Which evaluation protocol a result row was made under, and which code made it.

Rows written before the fair-comparison protocol carry no ``protocol`` field; they are
protocol 1. Numbers from two protocols must never meet in one table or one mean, so every
row says its protocol and the report names the protocol of each number it prints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from .settings import BenchConfigError

#: The protocol rows written by this code follow.
PROTOCOL = 2

#: What each protocol means, as the report states it.
DESCRIPTIONS: dict[int, str] = {
    1: ("protocol 1 (the first published series): host editors trained on a space-prefixed target that the scorer "
        "did not score for zh/ja/th sources, baselines at untuned defaults, no CounterFact neighbourhood score and "
        "no length-normalised view, no code commit in the rows"),
    2: ("protocol 2: every editor optimises exactly the target ids the scorer scores, CounterFact neighbourhood "
        "score and length-normalised ES/PS in every row, failed edits counted apart, the code commit in each row"),
}


def row_protocol(row: Mapping[str, Any]) -> int:
    """The protocol of a result row (1 for rows older than the field)."""
    return int(row.get("protocol", 1))


def protocols_of(rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """The protocols present among ``rows``, ascending."""
    return sorted({row_protocol(r) for r in rows})


def code_commit() -> dict[str, Any]:
    """The plugin's git commit and whether tracked files differed from it when the run started.

    ``{"commit": None, "dirty": None}`` outside a git checkout (an installed wheel).
    """
    from memla_plugin.adapters.sidecar import code_version

    version = code_version()
    return {"commit": version.get("commit"), "dirty": version.get("dirty")}


def checkout_of(package_file: str, depth: int) -> Optional[Path]:
    """The folder ``depth`` levels above a package's file's folder when it is a git checkout, else None."""
    parents = Path(package_file).resolve().parents
    if depth >= len(parents):
        return None
    root = parents[depth]
    return root if (root / ".git").exists() else None


def check_one_checkout(plugin_file: Optional[str] = None, harness_file: Optional[str] = None) -> None:
    """Refuse a run whose plugin and harness come from two checkouts.

    A row records the commit of the checkout ``memla_plugin`` was imported from. Run from one checkout with
    PYTHONPATH pointing at another, ``python -m`` puts the current directory first on sys.path, so the
    plugin can come from one tree and the harness from the other: the row would name a commit that is not
    the code that ran. Installed packages (no checkout) are not checked.
    """
    import memla_plugin

    plugin = checkout_of(plugin_file or str(memla_plugin.__file__), 1)  # <root>/memla_plugin/__init__.py
    harness = checkout_of(harness_file or __file__, 3)  # <root>/benchmarks/mkeb/memla_mkeb/protocol.py
    if plugin is not None and harness is not None and plugin != harness:
        raise BenchConfigError(
            f"memla_plugin is imported from {plugin} but the harness (memla_mkeb) from {harness}: the rows "
            f"would record the commit of {plugin}. Run from one checkout, or set PYTHONSAFEPATH=1 so that "
            f"the current directory does not shadow PYTHONPATH")


def commit_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Rows per code commit, as "abcdef123456" or "abcdef123456 (dirty)", in first-seen order."""
    counts: dict[str, int] = {}
    for row in rows:
        code = row.get("code") or {}
        if not code.get("commit"):
            continue
        text = str(code["commit"])[:12] + (" (dirty)" if code.get("dirty") else "")
        counts[text] = counts.get(text, 0) + 1
    return counts


#: A file a series may keep beside its run dirs to say which code made rows that name several commits.
CODE_NOTE = "CODE.md"


__all__ = ["CODE_NOTE", "DESCRIPTIONS", "PROTOCOL", "check_one_checkout", "checkout_of", "code_commit", "commit_counts",
           "protocols_of", "row_protocol"]
