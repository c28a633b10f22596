"""Scoring a model on MKEB records: plan every sequence, run the engine once, compute the metrics.

For a batch of records, every teacher-forced (prompt, target) pair and every greedy decode
the metrics need (all languages; edit and paraphrase prompts with both targets;
neighbourhood and multi-hop answers) is collected once, deduplicated, scored in pooled
batches (:mod:`.kv_fork`, or :mod:`.engine` for models whose cache cannot be forked), and
the results are handed to the metric definitions of :mod:`.metric_registry`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Sequence

from memla_plugin.errors import MEMLAError
from memla_plugin.tokenisation import encode_prompt, encode_target

from .engine import TFResult, evaluating, greedy_decode, pad_id_of, teacher_forced
from .generation import GEN_MAX_NEW_TOKENS, GenAnswers, answer_complete, answer_text, stop_ids
from .kv_fork import shared_prompt_scoring
from .metric_registry import Answer, LangOutputs, compute_all
from .schema import MKEBRecord

if TYPE_CHECKING:
    from .reference import UneditedReference

Scores = dict[str, dict[str, Any]]
LocTokens = dict[str, list[list[int]]]
GenLoc = dict[str, list[str]]

__all__ = ["MetricConfigError", "RecordOutputs", "Scores", "ScoringOptions", "score_record", "score_records"]


class MetricConfigError(MEMLAError, ValueError):
    """A scoring option is invalid (e.g. a prompt template without ``{}``)."""


@dataclass(frozen=True)
class ScoringOptions:
    """How records are scored; every scoring function takes these as keyword arguments.

    ``device``: where inputs go (default: the model's device). ``batch_size``: rows per
    forward call. ``max_new_tokens``: cap on the greedy decode of NS/MQ (default: as many
    tokens as the gold answer has). ``share_prompts=False`` scores every (prompt, target)
    sequence separately (slower; equal up to float rounding). ``prompt_template`` wraps every
    evaluated prompt (e.g. ``"Q: {}\\nA:"``); the default evaluates the questions as they are,
    which is what EasyEdit does and what the edit methods are trained on.
    ``gen_max_new_tokens``: length bound of the greedy answers that the generation-based
    metrics read (:mod:`.generation`; 0 leaves them unmeasured). ``gen_template``: the
    template those answers are asked under (default: ``prompt_template``, so they share its
    prompt computation). ``share_prefix``: with ``share_prompts``, a head of at least this many tokens
    common to every prompt (an in-context editor's demonstrations, far longer than any prompt
    format's own text) is computed once per scoring (0: never; see
    :func:`.kv_fork.shared_prompt_scoring`).
    """

    device: Any = None
    batch_size: int = 32
    max_new_tokens: Optional[int] = None
    share_prompts: bool = True
    prompt_template: str = "{}"
    gen_max_new_tokens: int = GEN_MAX_NEW_TOKENS
    gen_template: Optional[str] = None
    share_prefix: int = 64


class _Plan:
    """Collects the teacher-forced pairs and decode prompts of several records, deduplicated."""

    def __init__(self) -> None:
        self.pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.pair_index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        self.decodes: list[tuple[tuple[int, ...], int]] = []
        self.decode_index: dict[tuple[tuple[int, ...], int], int] = {}
        self.full_length: set[int] = set()  # decodes some metric reads token by token (NS, MQ)

    def pair(self, prompt: Sequence[int], target: Sequence[int]) -> int:
        key = (tuple(prompt), tuple(target))
        if key not in self.pair_index:
            self.pair_index[key] = len(self.pairs)
            self.pairs.append(key)
        return self.pair_index[key]

    def decode(self, prompt: Sequence[int], n: int, *, answer: bool = False) -> int:
        """Index of the greedy decode of ``n`` tokens after ``prompt``; ``answer``: only its
        :func:`.generation.answer_text` is read, so it may stop once that is complete."""
        key = (tuple(prompt), n)
        if key not in self.decode_index:
            self.decode_index[key] = len(self.decodes)
            self.decodes.append(key)
        if not answer:
            self.full_length.add(self.decode_index[key])
        return self.decode_index[key]

    def decode_until(self, tok: Any) -> list[Any]:
        """Per decode, the early-stop test of the answer-only ones (None: every token is read)."""
        complete = answer_complete(tok)
        return [None if i in self.full_length else complete for i in range(len(self.decodes))]


#: A prompt with a gold answer in the plan: (pair index, decode index, gold ids).
_PlannedAnswer = tuple[int, int, list[int]]


@dataclass
class _LangSpec:
    """Indices into the plan for everything the metrics read in one language of one record."""

    edit_new: int
    edit_true: Optional[int]
    para_new: list[int]
    para_true: Optional[list[int]]
    loc: list[_PlannedAnswer]
    port: list[_PlannedAnswer]
    loc_new: list[int]  # the record's target_new after each neighbourhood prompt (CounterFact's NS)
    loc_true: Optional[list[int]]  # target_true there; None without target_true
    gen: Optional[dict[str, Any]] = None  # decode indices and targets of the greedy answers (_plan_gen)


def _plan_answers(tok: Any, plan: _Plan, encode: Callable[[str], list[int]], lang: str, where: str,
                  prompts: Sequence[str], golds: Sequence[str], field_name: str,
                  max_new_tokens: Optional[int]) -> list[_PlannedAnswer]:
    items = []
    for prompt, gold in zip(prompts, golds):
        gid = encode_target(tok, gold, lang, where=f"{where}, field {field_name!r}")
        p = encode(prompt)
        n = len(gid) if max_new_tokens is None else min(len(gid), max_new_tokens)
        items.append((plan.pair(p, gid), plan.decode(p, n), gid))
    return items


def _plan_lang(tok: Any, record: MKEBRecord, lang: str, plan: _Plan, encode: Callable[[str], list[int]],
               max_new_tokens: Optional[int]) -> _LangSpec:
    fact = record.fact(lang)
    where = f"record {record.example_id}, lang {lang!r}"
    new = encode_target(tok, fact.target_new, lang, where=f"{where}, field 'edit.target_new'")
    true = (
        encode_target(tok, fact.target_true, lang, where=f"{where}, field 'edit.target_true'")
        if fact.target_true
        else None
    )
    q = encode(fact.question)
    edit_new = plan.pair(q, new)
    edit_true = plan.pair(q, true) if true else None
    paras = [encode(p) for p in record.paraphrase_prompts.get(lang, [])]
    para_new = [plan.pair(p, new) for p in paras]
    para_true = [plan.pair(p, true) for p in paras] if true else None
    loc = _plan_answers(tok, plan, encode, lang, where, record.neighborhood_prompts.get(lang, []),
                        record.neighborhood_answers.get(lang, []), "neighborhood_answers", max_new_tokens)
    hood = [encode(p) for p in record.neighborhood_prompts.get(lang, [])]
    loc_new = [plan.pair(p, new) for p in hood]
    loc_true = [plan.pair(p, true) for p in hood] if true else None
    mh_q = record.multi_hop_questions.get(lang, [])
    mh_a = record.multi_hop_new_answer.get(lang)
    port = (_plan_answers(tok, plan, encode, lang, where, mh_q, [mh_a] * len(mh_q), "multi_hop_new_answer",
                          max_new_tokens) if mh_a else [])
    return _LangSpec(edit_new, edit_true, para_new, para_true, loc, port, loc_new, loc_true)


def _plan_gen(record: MKEBRecord, lang: str, plan: _Plan, encode: Callable[[str], list[int]], n: int) -> Optional[dict[str, Any]]:
    """Bounded greedy answers to the edit question, paraphrases and neighbourhood prompts (None for n = 0)."""
    if n <= 0:
        return None
    fact = record.fact(lang)
    return {
        "targets": (fact.target_new, fact.target_true or None),
        "edit": plan.decode(encode(fact.question), n, answer=True),
        "para": [plan.decode(encode(p), n, answer=True) for p in record.paraphrase_prompts.get(lang, [])],
        "loc": [plan.decode(encode(p), n, answer=True) for p in record.neighborhood_prompts.get(lang, [])],
    }


def _gen_answers(tok: Any, lang: str, spec: Optional[dict[str, Any]], dec: list[list[int]],
                 reference: "UneditedReference | None", own_reference: bool, stops: set[int]) -> Optional[GenAnswers]:
    if spec is None:
        return None
    text = lambda i: answer_text(tok, dec[i], stops)  # noqa: E731
    ref_loc = reference.gen_loc.get(lang) if reference is not None else None
    return GenAnswers(lang, spec["targets"][0], spec["targets"][1], text(spec["edit"]),
                      [text(i) for i in spec["para"]], [text(i) for i in spec["loc"]], ref_loc, own_reference)


class RecordOutputs(NamedTuple):
    """One record's scores and what its unedited reference keeps: neighbourhood argmax and answers."""

    scores: Scores
    loc_tokens: LocTokens
    gen_loc: GenLoc


def _finish(tok: Any, specs: dict[str, _LangSpec], tf: list[TFResult], dec: list[list[int]],
            reference: "UneditedReference | None", own_reference: bool) -> RecordOutputs:
    """Metric values per language, the argmax tokens on the neighbourhood answers, the neighbourhood answers."""
    scores: Scores = {}
    loc_tokens: LocTokens = {}
    gen_loc: GenLoc = {}
    stops = stop_ids(tok)
    for lang, s in specs.items():
        outputs = LangOutputs(
            tok=tok,
            edit_new=tf[s.edit_new],
            edit_true=tf[s.edit_true] if s.edit_true is not None else None,
            para_new=[tf[i] for i in s.para_new],
            para_true=[tf[i] for i in s.para_true] if s.para_true is not None else None,
            loc=[Answer(tf[p], dec[d], g) for p, d, g in s.loc],
            port=[Answer(tf[p], dec[d], g) for p, d, g in s.port],
            reference_loc=reference.loc_tokens.get(lang) if reference is not None else None,
            is_reference=own_reference,
            loc_new=[tf[i] for i in s.loc_new],
            loc_true=[tf[i] for i in s.loc_true] if s.loc_true is not None else None,
            gen=_gen_answers(tok, lang, s.gen, dec, reference, own_reference, stops),
        )
        loc_tokens[lang] = [a.forced.argmax for a in outputs.loc]
        if outputs.gen is not None:
            gen_loc[lang] = outputs.gen.neighbourhood
        scores[lang] = compute_all(outputs)
    return RecordOutputs(scores, loc_tokens, gen_loc)


def _execute(model: Any, tok: Any, plan: _Plan, opts: ScoringOptions) -> tuple[list[TFResult], list[list[int]]]:
    """Run every planned pair and decode under :func:`.engine.evaluating` (eval mode, no gradients)."""
    pad = pad_id_of(tok)
    kw: dict[str, Any] = {"pad_id": pad, "device": opts.device, "batch_size": opts.batch_size}
    until = plan.decode_until(tok)
    with evaluating(model):
        shared = (shared_prompt_scoring(model, plan.pairs, plan.decodes, until=until,
                                        share_prefix=opts.share_prefix, **kw)
                  if opts.share_prompts else None)
        if shared is not None:
            return shared
        tf = teacher_forced(model, plan.pairs, **kw)
        dec = greedy_decode(model, [p for p, _ in plan.decodes], [n for _, n in plan.decodes], until=until, **kw)
        return tf, dec


def run_scoring(model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str] | None,
                opts: ScoringOptions, references: Sequence["UneditedReference | None"] | None = None,
                *, own_reference: bool = False) -> list[RecordOutputs]:
    """Scores, neighbourhood argmax tokens and answers for each record (the engine runs once for all).

    ``own_reference``: the model is the unedited reference itself, so ``loc_acc`` is 1.
    """
    gen_template = opts.prompt_template if opts.gen_template is None else opts.gen_template
    for name, template in (("prompt_template", opts.prompt_template), ("gen_template", gen_template)):
        if "{}" not in template:
            raise MetricConfigError(f"{name} {template!r} has no '{{}}' for the question")

    def encode(text: str, template: str = opts.prompt_template) -> list[int]:  # every prompt goes through a template
        return encode_prompt(tok, template.replace("{}", text, 1))

    plan = _Plan()
    specs = [{lang: _plan_lang(tok, rec, lang, plan, encode, opts.max_new_tokens) for lang in (langs or rec.langs)}
             for rec in records]
    for rec, spec in zip(records, specs):
        for lang, s in spec.items():
            s.gen = _plan_gen(rec, lang, plan, lambda t: encode(t, gen_template), opts.gen_max_new_tokens)
    tf, dec = _execute(model, tok, plan, opts)
    refs = references or [None] * len(records)
    return [_finish(tok, spec, tf, dec, ref, own_reference) for spec, ref in zip(specs, refs)]


def score_records(model: Any, tok: Any, records: Sequence[MKEBRecord], langs: Sequence[str] | None = None, *,
                  references: Sequence["UneditedReference | None"] | None = None, **options: Any) -> list[Scores]:
    """:func:`score_record` for several records with their batches pooled (same model state).

    ``options``: the fields of :class:`ScoringOptions`.
    """
    return [out.scores for out in run_scoring(model, tok, records, langs, ScoringOptions(**options), references)]


def score_record(model: Any, tok: Any, record: MKEBRecord, langs: Sequence[str] | None = None, *,
                 reference: "UneditedReference | None" = None, **options: Any) -> Scores:
    """Score ``model`` on one record in ``langs`` (default: all of the record's languages).

    Returns ``{lang: {metric: value}}`` for every metric of :mod:`.metric_registry`; a metric
    is ``None`` when the data lack what it needs, and ``loc_acc`` is ``None`` unless
    ``reference`` (the unedited model's outputs, see :func:`.reference.unedited_reference`)
    is given. ``options``: the fields of :class:`ScoringOptions` (device, batch_size,
    max_new_tokens, share_prompts, prompt_template).
    """
    return score_records(model, tok, [record], langs, references=[reference], **options)[0]
