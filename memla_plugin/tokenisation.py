"""How prompts and answer targets become token ids, for editing and for scoring alike.

Two forms of a target are in use, and each has one function here:

* :func:`target_with_space`: the form every edit method optimises and the scorer scores
  (MEMLA's training, the EasyEdit editors through :mod:`memla_plugin.easyedit.targets`, and
  :func:`encode_target`). The text is stripped, then gets one leading space when the language
  separates words with spaces and the tokenizer folds a preceding space into the next token
  (byte-level BPE: GPT-2, Qwen2, Llama-3), so the ids are what the model would produce after
  the question. Without a tokenizer the space is added for spaced languages.
* :func:`unspaced_target_ids`: the attribution form. The target exactly as given, no space
  added, as in the MEMLA authors' attribution code; kept that way so neuron sets match theirs.

Training used to keep a target's own surrounding whitespace and add the space whenever the
tokenizer did not mark word starts itself. Both differences vanish on real data: MKEB
targets carry no surrounding whitespace, and a tokenizer that does not fold spaces into
tokens and does not mark word starts (word-level, WordPiece) gives the same ids with or
without the space. The one function therefore serves both, and a padded target (" Paris ")
is now trained on the same ids as it is scored on.

Targets never carry special tokens (no BOS inside a target). Prompts for scoring keep the
tokenizer's leading specials but drop a trailing EOS (:func:`encode_prompt`); training and
attribution tokenise prompts with ``tok(prompt)`` as the tokenizer defines it.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from .errors import EmptyTargetError
from .languages import NO_SPACE_LANGS

__all__ = [
    "NO_SPACE_LANGS",
    "encode_prompt",
    "encode_target",
    "marks_word_start",
    "target_ids",
    "target_with_space",
    "unspaced_target_ids",
    "uses_space_prefix",
]

#: What the probes found per tokenizer object: {tokenizer: {probe name: answer}}.
_PROBES: "weakref.WeakKeyDictionary[Any, dict[str, bool]]" = weakref.WeakKeyDictionary()


def _ids(tok: Any, text: str, special: bool) -> list[int]:
    return list(tok(text, add_special_tokens=special)["input_ids"])


def _probe(tok: Any, name: str, compute: Callable[[Any], bool]) -> bool:
    """``compute(tok)``, remembered per tokenizer (tokenizers that cannot be weakly referenced are not cached)."""
    try:
        return _PROBES[tok][name]
    except (KeyError, TypeError):
        pass
    answer = compute(tok)
    try:
        _PROBES.setdefault(tok, {})[name] = answer
    except TypeError:
        pass
    return answer


def _first_piece_marked(tok: Any) -> bool:
    try:
        pieces = tok.convert_ids_to_tokens(_ids(tok, "x", False))
        return bool(pieces) and str(pieces[0]).startswith("\u2581")
    except Exception:  # an exotic tokenizer: treat it as one that does not mark word starts
        return False


def marks_word_start(tok: Any) -> bool:
    """Whether the tokenizer itself puts a word-start marker on a bare word ("x" -> "▁x").

    SentencePiece-style tokenizers (Llama-2, mT5) do; adding our own space before a target
    would then produce a stray lone "▁" token.
    """
    return _probe(tok, "marks_word_start", _first_piece_marked)


def _space_changes_ids(tok: Any) -> bool:
    return _ids(tok, "x", False) != _ids(tok, " x", False)


def uses_space_prefix(tok: Any) -> bool:
    """Whether a word after a space is encoded with the space folded into its token.

    True for byte-level BPE (GPT-2, Qwen2, Llama-3). False where pre-tokenisation drops
    whitespace (word-level, WordPiece: a space changes nothing) and where the tokenizer adds
    a SentencePiece dummy prefix itself (:func:`marks_word_start`).
    """
    return _probe(tok, "uses_space_prefix", lambda t: _space_changes_ids(t) and not marks_word_start(t))


def target_with_space(text: str, lang: str, tok: Any = None) -> str:
    """The target as every method optimises it and the scorer scores it: stripped, a leading space where it belongs.

    No space for languages written without spaces (zh, ja, th); otherwise one leading space
    exactly when the tokenizer folds spaces into tokens (:func:`uses_space_prefix`), or
    always when no tokenizer is given.
    """
    text = text.strip()
    if not text or lang in NO_SPACE_LANGS or (tok is not None and not uses_space_prefix(tok)):
        return text
    return " " + text


#: The former name of the training form, now the same function as the scoring form.
target_with_space_unstripped = target_with_space


def _nonempty_ids(tok: Any, text: str, message: str) -> list[int]:
    ids = _ids(tok, text, False)
    if not ids:
        raise EmptyTargetError(message)
    return ids


def target_ids(tok: Any, text: str, *, what: str = "target") -> list[int]:
    """Token ids of a target text as given, without special tokens; ``what`` names it in the error."""
    return _nonempty_ids(tok, text, f"{what} {text!r} tokenises to zero tokens")


def unspaced_target_ids(tok: Any, target: str) -> list[int]:
    """The attribution form: ids of ``target`` exactly as given, no leading space added.

    The MEMLA authors' attribution code scores the bare target although their training adds
    a space; integrated gradients here do the same so the selected neurons stay comparable
    with theirs. Training and scoring use :func:`target_with_space` instead.
    """
    return _nonempty_ids(tok, target, f"target {target!r} tokenises to no tokens; attribution needs at least one")


def encode_prompt(tok: Any, text: str) -> list[int]:
    """Scoring prompt ids: the tokenizer's leading special tokens (BOS) but never a trailing EOS."""
    ids = _ids(tok, text, True)
    eos = getattr(tok, "eos_token_id", None)
    if eos is not None and len(ids) > 1 and ids[-1] == eos and text and _ids(tok, text, False)[-1:] != [eos]:
        ids = ids[:-1]
    return ids


def encode_target(tok: Any, text: str, lang: str, *, where: str = "target") -> list[int]:
    """Scoring target ids: :func:`target_with_space` applied, leading BOS tokens removed.

    ``where`` (record, language, field) opens the error raised for a target that tokenises
    to nothing.
    """
    ids = _ids(tok, target_with_space(text, lang, tok), False)
    bos = getattr(tok, "bos_token_id", None)
    while ids and bos is not None and ids[0] == bos and bos != getattr(tok, "eos_token_id", None):
        ids = ids[1:]
    if not ids:
        raise EmptyTargetError(f"{where} ({lang}): {text!r} tokenises to zero tokens")
    return ids

