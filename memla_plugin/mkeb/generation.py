"""Generation-based success: does the model, asked the question, now *say* the new answer?

ES and PS compare teacher-forced probabilities: an edit can lift P(target_new) above
P(target_true) while the model's own greedy answer still names neither. These metrics read
the greedy answer itself, bounded to :data:`GEN_MAX_NEW_TOKENS` tokens (a scoring option)
and cut at the first special token (end of turn); the answer is its first non-empty line
(:func:`first_line`: under the ``preamble`` format the model goes on with a new ``Q:`` after its
answer, and under any format later lines are not the answer to this question):

* ``gen_ES`` / ``gen_PS``: the answer to the edit question / to each paraphrase (mean)
  contains ``target_new``;
* ``gen_ES_old`` / ``gen_PS_old``: it still contains ``target_true`` (lower is better after
  an edit; both can hold at once, e.g. "London, not Philadelphia");
* ``gen_NS``: the share of neighbourhood prompts whose answer equals the unedited model's
  answer (normalised; 1 for the unedited model itself).

"Contains" is judged on normalised text (:func:`normalise_answer`: Unicode NFKC, case
folded, punctuation and symbols turned into spaces, spaces collapsed): as whole words in
languages that separate words with spaces, as a plain substring in zh/ja/th, whose scripts
do not. The answers are greedy decodes under the scorer's prompt template (the run's prompt
format, e.g. the chat template of an instruct model), batched with the other decodes.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from memla_plugin.languages import NO_SPACE_LANGS

__all__ = [
    "GEN_MAX_NEW_TOKENS",
    "GenAnswers",
    "answer_complete",
    "answer_text",
    "contains_answer",
    "first_line",
    "gen_neighbourhood_kept",
    "gen_says",
    "normalise_answer",
    "same_answer",
    "stop_ids",
    "which_target",
]

#: Default cap on the greedy answer's length in tokens: room for a short sentence that names the
#: object ("Spike Hughes originates from Philadelphia, Pennsylvania.") in any MKEB language.
GEN_MAX_NEW_TOKENS = 20


def normalise_answer(text: str, lang: str = "en") -> str:
    """``text`` compared loosely: NFKC, case folded, punctuation/symbols as spaces, spaces collapsed.

    In zh/ja/th (no spaces between words) every space is removed, so a target matches wherever
    it appears inside a sentence.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    chars = [" " if unicodedata.category(c)[0] in "PSZC" else c for c in folded]
    words = "".join(chars).split()
    return "".join(words) if lang in NO_SPACE_LANGS else " ".join(words)


def contains_answer(answer: str, target: Optional[str], lang: str) -> bool:
    """Whether the normalised ``answer`` names the normalised ``target`` (whole words where words are spaced)."""
    if not target:
        return False
    want = normalise_answer(target, lang)
    if not want:
        return False
    have = normalise_answer(answer, lang)
    if lang in NO_SPACE_LANGS:
        return want in have
    return f" {want} " in f" {have} "


def which_target(answer: str, target_new: Optional[str], target_true: Optional[str], lang: str) -> str:
    """Which target an answer names: ``new``, ``old``, ``both`` or ``neither``."""
    new, old = contains_answer(answer, target_new, lang), contains_answer(answer, target_true, lang)
    return "both" if new and old else "new" if new else "old" if old else "neither"


def same_answer(a: str, b: str, lang: str) -> bool:
    """Whether two answers (their first lines: a reference cached whole compares the same way) are equal
    after normalisation."""
    return normalise_answer(first_line(a), lang) == normalise_answer(first_line(b), lang)


def stop_ids(tok: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's special tokens, including added chat markers."""
    ids = {int(i) for i in (getattr(tok, "all_special_ids", None) or [])}
    # chat markers such as Qwen's <|im_end|> are added special tokens outside all_special_ids
    for tid, added in (getattr(tok, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(tid))
    for name in ("eos_token_id", "pad_token_id"):
        value = getattr(tok, name, None)
        if isinstance(value, int):
            ids.add(value)
    return ids


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped ("" when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def answer_text(tok: Any, ids: Sequence[int], stops: Optional[set[int]] = None) -> str:
    """The greedy tokens up to the first special token, decoded without special tokens: its first line."""
    stops = stop_ids(tok) if stops is None else stops
    cut = []
    for t in ids:
        if int(t) in stops:
            break
        cut.append(int(t))
    return first_line(tok.decode(cut, skip_special_tokens=True)) if cut else ""


def answer_complete(tok: Any, stops: Optional[set[int]] = None) -> Callable[[Sequence[int]], bool]:
    """A test on a growing greedy decode: true once more tokens cannot change its :func:`answer_text`.

    That holds after a special token (everything after it is cut) or once the text holds a
    non-empty line followed by a line break (only the first non-empty line is the answer). The
    decode loops stop when every row passes it, so a short answer does not pay for the whole
    length bound; the tokens that would have followed are never read.
    """
    stops = stop_ids(tok) if stops is None else stops

    def complete(ids: Sequence[int]) -> bool:
        cut = []
        for t in ids:
            if int(t) in stops:
                return True
            cut.append(int(t))
        text = tok.decode(cut, skip_special_tokens=True) if cut else ""
        # splitlines(keepends=True): a piece longer than its own first line ends with a line break
        return any(line.strip() and line.splitlines()[0] != line for line in text.splitlines(keepends=True))

    return complete


@dataclass
class GenAnswers:
    """One record's greedy answers in one language, as text, and the targets they are checked for.

    ``reference_loc``: the unedited model's neighbourhood answers (``None`` without a
    reference); ``is_reference``: these answers are the unedited model's own.
    """

    lang: str
    target_new: str
    target_true: Optional[str]
    edit: str
    paraphrases: list[str] = field(default_factory=list)
    neighbourhood: list[str] = field(default_factory=list)
    reference_loc: Optional[list[str]] = None
    is_reference: bool = False


def _share(flags: Iterable[bool]) -> float | None:
    flags = [float(f) for f in flags]
    return sum(flags) / len(flags) if flags else None


def gen_says(g: Optional[GenAnswers], which: str, *, paraphrases: bool) -> float | None:
    """Share of answers (the edit question's, or the paraphrases') naming ``target_new`` or ``target_true``.

    ``which``: ``"new"`` or ``"true"``; ``None`` when the target or the prompts are missing.
    """
    if g is None:
        return None
    target = g.target_new if which == "new" else g.target_true
    if not target:
        return None
    answers = g.paraphrases if paraphrases else [g.edit]
    return _share(contains_answer(a, target, g.lang) for a in answers)


def gen_neighbourhood_kept(g: Optional[GenAnswers]) -> float | None:
    """Share of neighbourhood answers equal to the unedited model's (normalised); 1 for that model."""
    if g is None or not g.neighbourhood:
        return None
    if g.is_reference:
        return 1.0
    if g.reference_loc is None or len(g.reference_loc) != len(g.neighbourhood):
        return None
    return _share(same_answer(a, b, g.lang) for a, b in zip(g.neighbourhood, g.reference_loc))
