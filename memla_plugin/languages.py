"""The languages of the MKEB benchmark and the script facts that tokenisation relies on.

One place for them so that hyperparameter checks, the record schema, the benchmark settings
and the target-spacing rule cannot drift apart. Pure data and one ordering helper; nothing
here imports anything.
"""
from __future__ import annotations

from typing import Iterable

#: The 12 MKEB languages in the order of the MEMLA paper's tables (arXiv 2406.11566).
MKEB_LANGS: tuple[str, ...] = ("en", "zh", "fr", "de", "it", "es", "pt", "pl", "ru", "ja", "ko", "th")

#: Languages whose script does not separate words with spaces: a target that follows a
#: prompt in one of them gets no leading space.
NO_SPACE_LANGS: frozenset[str] = frozenset({"zh", "ja", "th"})


def in_mkeb_order(langs: Iterable[str]) -> list[str]:
    """The distinct codes of ``langs``: MKEB languages in benchmark order, then any others sorted.

    Tables, record listings and converted files all show languages this way, so a report
    reads the same whichever order the data happened to list them in.
    """
    found = set(langs)
    return [lang for lang in MKEB_LANGS if lang in found] + sorted(found - set(MKEB_LANGS))
