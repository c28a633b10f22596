"""Make EasyEdit's editors optimise exactly the target ids the MKEB scorer scores.

The pinned host's editors put a space in front of ``target_new`` before tokenising it (ROME
and FT always, MEMIT and MEND unless it already starts with one; LoRA joins prompt and target
with a space), because GPT-2's tokenizer folds the space into the first target token. For
languages written without spaces (zh, ja, th) the scorer, like MEMLA's training, uses the
bare target (:func:`memla_plugin.tokenisation.target_with_space`), so the host's editors were
optimising other token ids than the ones scored.

:class:`ScoredTarget` is a ``str`` that carries its scored form: whenever the host writes a
space before it (``" " + target`` or ``prompt + " " + target``), that space is replaced by the
target's own spacing, so the text the host tokenises ends in exactly the scored form. Nothing
in the host changes for ordinary strings. :func:`with_scored_targets` wraps an apply function
so every request with an ``edit_lang`` gets such a target; LoRA's ``f"{p} {l}"`` join needs
one host fix as well (:mod:`.patches`), since an f-string never asks its operands.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Sequence

from ..tokenisation import target_with_space

_MARK = "__memla_scored_targets__"


class ScoredTarget(str):
    """A target text (stripped) that knows its scored form, e.g. ``"巴黎"`` or ``" Paris"``.

    ``" " + t`` gives the scored form; ``text + t`` with ``text`` ending in one space gives
    ``text[:-1] + scored``; anything else concatenates as usual.
    """

    scored: str

    def __new__(cls, text: str, scored: str) -> "ScoredTarget":
        obj = super().__new__(cls, text)
        obj.scored = scored
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (str(self), self.scored)

    def __radd__(self, other: Any) -> str:
        if not isinstance(other, str):
            return NotImplemented
        if other.endswith(" "):
            return other[:-1] + self.scored
        return other + str(self)


def scored_target(text: str, lang: str, tok: Any) -> ScoredTarget:
    """``text`` as a :class:`ScoredTarget` for language ``lang`` under ``tok``."""
    return ScoredTarget(text.strip(), target_with_space(text, lang, tok))


def scored_requests(requests: Sequence[dict[str, Any]], tok: Any) -> list[dict[str, Any]]:
    """Copies of ``requests`` whose ``target_new`` is a :class:`ScoredTarget` (those with an ``edit_lang``).

    A request without ``edit_lang`` is passed on unchanged: its language, and therefore its
    scored form, is unknown.
    """
    out = []
    for request in requests:
        lang, target = request.get("edit_lang"), request.get("target_new")
        if isinstance(lang, str) and isinstance(target, str) and target.strip():
            request = copy.copy(request)
            request["target_new"] = scored_target(target, lang, tok)
        out.append(request)
    return out


def with_scored_targets(apply_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an EasyEdit apply function ``(model, tok, requests, hparams, ...)`` to edit on scored targets."""
    if getattr(apply_fn, _MARK, False):
        return apply_fn

    @functools.wraps(apply_fn)
    def apply(model: Any, tok: Any, requests: Sequence[dict[str, Any]], hparams: Any, *args: Any,
              **kwargs: Any) -> Any:
        return apply_fn(model, tok, scored_requests(requests, tok), hparams, *args, **kwargs)

    setattr(apply, _MARK, True)
    return apply


__all__ = ["ScoredTarget", "scored_requests", "scored_target", "with_scored_targets"]
