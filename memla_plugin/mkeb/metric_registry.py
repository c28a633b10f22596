"""Every metric the MKEB scorer reports, declared once: what it measures, what it needs, how it reads.

Two families, per evaluation language:

* MKEB's own (the MEMLA paper, arXiv 2406.11566): ``ES`` edit success, 1 if
  P(target_new | question) > P(target_true | question), a target's probability being the
  product over its tokens, teacher forced; ``PS`` the same comparison averaged over the
  paraphrase prompts; ``NS`` greedy-decode as many tokens as the neighbourhood answer has
  and take token-set F1 against it, averaged over neighbourhood prompts; ``MQ`` the same
  F1 on the multi-hop questions against the new answer.
* EasyEdit's teacher-forced token accuracy (share of target positions whose argmax is the
  target token): ``rel_acc`` on the edit question, ``gen_acc`` on the paraphrases (mean),
  ``port_acc`` on the multi-hop questions (mean), and ``loc_acc``, as EasyEdit computes
  locality, the share of neighbourhood-answer positions where the model's argmax equals the
  *unedited* model's; it needs the unedited model's outputs and is 1.0 for that model itself.
* Probability comparisons in the CounterFact evaluation's way (Meng et al., ROME, 2022):
  ``NS_cf`` the share of neighbourhood prompts where P(target_true) > P(target_new), the
  record's own two targets teacher forced after each neighbourhood prompt (an edit that
  bleeds into unrelated questions raises P(target_new) there); and the length-normalised
  views ``ES_norm``, ``PS_norm``, ``NS_cf_norm``: the same comparisons made on the mean
  log-probability per target token instead of the sum, so a short target is not favoured
  for being short. ES/PS/NS_cf compare sums, as the MEMLA authors' code does.
* ``true_acc``: EasyEdit's reliability measure applied to the pre-edit answer, the token
  accuracy of ``target_true`` after the edit question: how much of its own fact the model
  shows (on the unedited model it decides the harness's default prompt format).

* What the model says (:mod:`.generation`): ``gen_ES``/``gen_PS`` whether its bounded greedy
  answer to the edit question / the paraphrases names ``target_new``, ``gen_ES_old``/``gen_PS_old``
  whether it still names ``target_true``, ``gen_NS`` whether its neighbourhood answers equal
  the unedited model's.

A metric whose inputs a record lacks (ES/PS without ``target_true``, as in zsRE) is ``None``.
Scores aggregate by the mean over records, ``None`` left out; higher is better for all but
``gen_ES_old``/``gen_PS_old``.
Reports read titles, families and "needs" texts from :data:`METRIC_REGISTRY` rather than
keeping their own lists.

Token-set F1 compares tokenizer tokens with the word-boundary marker (GPT-2's ``Ġ``,
SentencePiece's ``▁``) removed, so " London" and "London" count as one token; working on
tokens rather than whitespace-separated words keeps the score meaningful for zh/ja/th.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Optional, Sequence

from .generation import gen_neighbourhood_kept, gen_says

if TYPE_CHECKING:  # for annotations only: metric definitions do not depend on the engine
    from .engine import TFResult
    from .generation import GenAnswers

_WORD_MARKERS = ("Ġ", "▁", " ")


def mean_or_none(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or ``None`` for no values (a metric without inputs)."""
    values = list(values)
    return sum(values) / len(values) if values else None


def canonical_tokens(tok: Any, ids: Sequence[int]) -> set[str]:
    """Token strings without word-boundary markers, for token-set F1."""
    out: set[str] = set()
    for piece in tok.convert_ids_to_tokens(list(ids)):
        piece = str(piece)
        while piece[:1] in _WORD_MARKERS and piece:
            piece = piece[1:]
        if piece:
            out.add(piece)
    return out


def token_set_f1(pred: set[str], gold: set[str]) -> float:
    """F1 between two token sets (0 when either is empty)."""
    common = len(pred & gold)
    if not pred or not gold or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


class Answer(NamedTuple):
    """A prompt with a gold answer: its teacher-forced result, the greedy decode and the gold ids."""

    forced: "TFResult"
    decoded: list[int]
    gold: list[int]


@dataclass
class LangOutputs:
    """What the scoring engine produced for one record in one language, as the metrics read it.

    ``edit_true``/``para_true`` are ``None`` when the record has no ``target_true``;
    ``reference_loc`` is the unedited model's argmax on each neighbourhood answer (``None``
    without a reference); ``is_reference`` marks the unedited model scoring itself.
    """

    tok: Any
    edit_new: "TFResult"
    edit_true: Optional["TFResult"]
    para_new: list["TFResult"]
    para_true: Optional[list["TFResult"]]
    loc: list[Answer]
    port: list[Answer]
    reference_loc: Optional[list[list[int]]] = None
    is_reference: bool = False
    loc_new: list["TFResult"] = field(default_factory=list)  # target_new after each neighbourhood prompt
    loc_true: Optional[list["TFResult"]] = None  # target_true there; None without target_true
    gen: Optional["GenAnswers"] = None  # greedy answers as text (generation-based success); None: not decoded

    def f1(self, answers: Sequence[Answer]) -> float | None:
        """Mean token-set F1 of the greedy decodes against the gold answers."""
        tok = self.tok
        return mean_or_none(token_set_f1(canonical_tokens(tok, a.decoded), canonical_tokens(tok, a.gold)) for a in answers)


def _edit_success(o: LangOutputs) -> float | None:
    return None if o.edit_true is None else float(o.edit_new.logprob > o.edit_true.logprob)


def _paraphrase_score(o: LangOutputs) -> float | None:
    if o.para_true is None:
        return None
    return mean_or_none(float(new.logprob > true.logprob) for new, true in zip(o.para_new, o.para_true))


def _logprob(r: "TFResult", normalised: bool) -> float:
    return r.mean_logprob if normalised else r.logprob


def _prefers(first: Sequence["TFResult"], second: Optional[Sequence["TFResult"]],
             normalised: bool) -> float | None:
    """Share of prompts where ``first``'s target is more probable than ``second``'s (None without ``second``)."""
    if second is None:
        return None
    return mean_or_none(float(_logprob(a, normalised) > _logprob(b, normalised)) for a, b in zip(first, second))


def _edit_success_norm(o: LangOutputs) -> float | None:
    return None if o.edit_true is None else _prefers([o.edit_new], [o.edit_true], True)


def _neighbourhood_kept(o: LangOutputs, normalised: bool) -> float | None:
    """CounterFact's neighbourhood score: P(target_true) still above P(target_new) on neighbourhood prompts."""
    return None if o.loc_true is None else _prefers(o.loc_true, o.loc_new, normalised)


def _locality_accuracy(o: LangOutputs) -> float | None:
    if o.is_reference:
        return 1.0 if o.loc else None
    if o.reference_loc is None:
        return None
    return mean_or_none(
        sum(a == b for a, b in zip(answer.forced.argmax, theirs)) / max(len(answer.forced.argmax), 1)
        for answer, theirs in zip(o.loc, o.reference_loc)
    )


def _gen(which: str, paraphrases: bool) -> Callable[[LangOutputs], Optional[float]]:
    """A generation-based success metric (:mod:`.generation`) reading ``LangOutputs.gen``."""
    return lambda o: gen_says(o.gen, which, paraphrases=paraphrases)


@dataclass(frozen=True)
class Metric:
    """One metric: its name in score dicts, family, title, what it needs and how it is computed."""

    name: str
    family: str  # "mkeb" or "easyedit"
    title: str
    needs: str
    compute: Callable[[LangOutputs], Optional[float]]
    higher_is_better: bool = True
    aggregation: str = "mean"  # over records, None values left out


#: Family names as reports title them.
FAMILY_TITLE = {"mkeb": "MKEB metrics", "counterfact": "CounterFact-style probability comparisons",
                "easyedit": "EasyEdit token-accuracy family", "knowledge": "The pre-edit fact",
                "generation": "What the model says (greedy answers)"}

_ALL = (
    Metric("ES", "mkeb", "edit success",
           "needs target_true (the pre-edit answer): ES compares P(target_new) with P(target_true)", _edit_success),
    Metric("PS", "mkeb", "paraphrase score",
           "needs target_true (the pre-edit answer) and paraphrase prompts", _paraphrase_score),
    Metric("NS", "mkeb", "neighbourhood score", "needs neighbourhood prompts with answers", lambda o: o.f1(o.loc)),
    Metric("MQ", "mkeb", "multi-hop score", "needs multi-hop questions with their new answers", lambda o: o.f1(o.port)),
    Metric("NS_cf", "counterfact", "neighbourhood score (CounterFact)",
           "needs target_true and neighbourhood prompts: NS_cf compares P(target_true) with P(target_new) there",
           lambda o: _neighbourhood_kept(o, False)),
    Metric("ES_norm", "counterfact", "edit success, per-token mean",
           "needs target_true (the pre-edit answer)", _edit_success_norm),
    Metric("PS_norm", "counterfact", "paraphrase score, per-token mean",
           "needs target_true (the pre-edit answer) and paraphrase prompts",
           lambda o: _prefers(o.para_new, o.para_true, True)),
    Metric("NS_cf_norm", "counterfact", "neighbourhood score (CounterFact), per-token mean",
           "needs target_true and neighbourhood prompts",
           lambda o: _neighbourhood_kept(o, True)),
    Metric("rel_acc", "easyedit", "reliability (token acc.)", "needs the edit prompt and target_new",
           lambda o: o.edit_new.correct),
    Metric("gen_acc", "easyedit", "generalisation (token acc.)", "needs paraphrase prompts",
           lambda o: mean_or_none(r.correct for r in o.para_new)),
    Metric("loc_acc", "easyedit", "locality (token acc.)",
           "needs neighbourhood prompts with answers and the unedited model's outputs", _locality_accuracy),
    Metric("port_acc", "easyedit", "portability (token acc.)", "needs multi-hop questions with their new answers",
           lambda o: mean_or_none(a.forced.correct for a in o.port)),
    Metric("gen_ES", "generation", "says the new answer (edit question)",
           "needs target_new; the bounded greedy answer to the edit question contains it", _gen("new", False)),
    Metric("gen_PS", "generation", "says the new answer (paraphrases)",
           "needs paraphrase prompts; the share of their greedy answers containing target_new", _gen("new", True)),
    Metric("gen_ES_old", "generation", "still says the old answer (edit question)",
           "needs target_true; the greedy answer to the edit question contains it", _gen("true", False),
           higher_is_better=False),
    Metric("gen_PS_old", "generation", "still says the old answer (paraphrases)",
           "needs target_true and paraphrase prompts", _gen("true", True), higher_is_better=False),
    Metric("gen_NS", "generation", "neighbourhood answers unchanged",
           "needs neighbourhood prompts and the unedited model's greedy answers to them",
           lambda o: gen_neighbourhood_kept(o.gen)),
    # rel_acc on the pre-edit answer: how much of its own fact the model shows (the prompt-format rule reads it)
    Metric("true_acc", "knowledge", "pre-edit answer (token acc.)",
           "needs target_true (the pre-edit answer)", lambda o: None if o.edit_true is None else o.edit_true.correct),
)

#: name -> Metric, in report order.
METRIC_REGISTRY: dict[str, Metric] = {m.name: m for m in _ALL}

#: The metric names the scorer produces, in report order.
METRICS: tuple[str, ...] = tuple(METRIC_REGISTRY)


def family_metrics(family: str) -> tuple[str, ...]:
    """Names of the metrics of one family, in report order."""
    return tuple(m.name for m in _ALL if m.family == family)


MKEB_METRICS: tuple[str, ...] = family_metrics("mkeb")
EASYEDIT_METRICS: tuple[str, ...] = family_metrics("easyedit")
COUNTERFACT_METRICS: tuple[str, ...] = family_metrics("counterfact")
GENERATION_METRICS: tuple[str, ...] = family_metrics("generation")


def compute_all(outputs: LangOutputs) -> dict[str, float | None]:
    """Every registered metric for one record and language: ``{name: value or None}``."""
    return {m.name: m.compute(outputs) for m in _ALL}
