"""How a question is put to the model: bare, in the model's chat template, or after a short preamble.

An instruction-tuned model asked a bare question often starts its answer with " The" or ends
the turn at once; its knowledge is then invisible to greedy decoding. The prompt format is
therefore one setting applied identically wherever a prompt reaches the model: knowledge-neuron
attribution and MEMLA training (through :class:`memla_plugin.hparams.MEMLAHyperParams`'s
``prompt_format``), the EasyEdit editors (their requests are formatted before they see them,
:mod:`memla_plugin.easyedit.formatting`) and MKEB scoring (its ``prompt_template``).

Formats (:data:`PROMPT_FORMATS`):

* ``bare``: the question as it is (what EasyEdit and the MEMLA authors' code do);
* ``chat``: the tokenizer's own chat template with the question as the one user turn and the
  assistant turn opened (``apply_chat_template(..., add_generation_prompt=True)``), with the
  template's default system message if it has one;
* ``preamble``: :data:`PREAMBLE`, a one-line instruction to answer briefly, then
  ``Q: <question>`` and ``A:``. The wording is ours; it is in English for every language.

Every format is a template with exactly one ``{}`` for the question (:func:`prompt_template`),
so a caller that tokenises ``tok(format_prompt(tok, q, fmt))`` gets the ids
``apply_chat_template(..., tokenize=True)`` would give: a BOS the template writes out is
dropped from the text when the tokenizer adds its own.
"""
from __future__ import annotations

import weakref
from typing import Any

from .errors import MEMLAError

#: The formats, simplest first (the order the default-format rule breaks near-ties in).
PROMPT_FORMATS = ("bare", "preamble", "chat")
#: What every caller uses unless told otherwise: the question as it is.
DEFAULT_PROMPT_FORMAT = "bare"
#: The answer preamble: a one-line instruction, then the question and an answer cue.
PREAMBLE = "Answer with the name or short phrase only, no sentence.\nQ: {}\nA:"

_SLOT = "{}"
_MARK = "\x00QUESTION\x00"  # stands for the question while the chat template renders
_TEMPLATES: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


class PromptFormatError(MEMLAError, ValueError):
    """An unknown prompt format, or ``chat`` for a tokenizer without a chat template."""


def check_prompt_format(name: Any, setting: str = "prompt_format") -> str:
    """``name`` if it is one of :data:`PROMPT_FORMATS`; else an error naming ``setting``."""
    if name is None:
        return DEFAULT_PROMPT_FORMAT
    if not isinstance(name, str) or name not in PROMPT_FORMATS:
        raise PromptFormatError(f"{setting}={name!r} unknown; use {', '.join(PROMPT_FORMATS[:-1])} or {PROMPT_FORMATS[-1]}")
    return name


def _adds_bos(tok: Any) -> bool:
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        return False
    try:
        ids = list(tok("x")["input_ids"])
    except Exception:  # an exotic tokenizer: leave the template as rendered
        return False
    return bool(ids) and ids[0] == bos


def _chat_template(tok: Any) -> str:
    if not getattr(tok, "chat_template", None):
        name = getattr(tok, "name_or_path", "") or type(tok).__name__
        raise PromptFormatError(
            f"prompt_format='chat' needs a chat template, and the tokenizer of {name!r} has none; "
            f"use prompt_format=bare or preamble"
        )
    text = tok.apply_chat_template([{"role": "user", "content": _MARK}], tokenize=False, add_generation_prompt=True)
    if text.count(_MARK) != 1:
        raise PromptFormatError(f"the chat template of {getattr(tok, 'name_or_path', '?')!r} does not keep the "
                                f"user turn verbatim; use prompt_format=bare or preamble")
    bos = getattr(tok, "bos_token", None)
    if bos and text.startswith(bos) and _adds_bos(tok):
        text = text[len(bos):]  # the tokenizer adds it again when the text is tokenised
    head, tail = text.split(_MARK)
    if _SLOT in head or _SLOT in tail:
        raise PromptFormatError("the chat template's own text contains '{}'; use prompt_format=bare or preamble")
    return head + _SLOT + tail


def prompt_template(tok: Any, fmt: str) -> str:
    """The template of ``fmt`` for ``tok``: a string with exactly one ``{}`` for the question.

    ``bare`` gives ``"{}"``, which is also what MKEB scoring's ``prompt_template`` takes.
    """
    fmt = check_prompt_format(fmt)
    if fmt == "bare":
        return _SLOT
    if fmt == "preamble":
        return PREAMBLE
    try:
        return _TEMPLATES[tok]
    except (KeyError, TypeError):
        pass
    template = _chat_template(tok)
    try:
        _TEMPLATES[tok] = template
    except TypeError:  # a tokenizer that cannot be weakly referenced is rendered each time
        pass
    return template


def fill_template(template: str, text: str) -> str:
    """``template`` with its one ``{}`` replaced by ``text`` (braces inside ``text`` are left alone)."""
    head, sep, tail = template.partition(_SLOT)
    if not sep:
        raise PromptFormatError(f"prompt template {template!r} has no '{{}}' for the question")
    return head + text + tail


def format_prompt(tok: Any, text: str, fmt: str) -> str:
    """``text`` (a question or a filled prompt) as the model sees it under ``fmt``."""
    if fmt == "bare":
        return text
    return fill_template(prompt_template(tok, fmt), text)


def with_context(template: str, context: str) -> str:
    """A template whose question slot is preceded by ``context`` (in-context editing's demonstrations).

    The context goes inside the format (in the user turn of a chat template), as part of the question.
    """
    if _SLOT in context:
        raise PromptFormatError("an in-context prefix contains '{}', which would be taken for the question slot")
    return fill_template(template, context + _SLOT)


__all__ = [
    "DEFAULT_PROMPT_FORMAT",
    "PREAMBLE",
    "PROMPT_FORMATS",
    "PromptFormatError",
    "check_prompt_format",
    "fill_template",
    "format_prompt",
    "prompt_template",
    "with_context",
]
