"""MEMLA against the best baseline: the comparisons and the report's "Findings" text.

The report's table "MEMLA minus the best baseline" and the Findings paragraphs both come
from :func:`.compare.compare_with_best`, so the words can never disagree with the table. The text is
generated from the intervals alone: a difference is called a win or a loss only when its
95% bootstrap interval excludes zero, and everything else is reported as unresolved.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .compare import LOSS, TIE, WIN, Comparison, EstKey, baselines_of, join_words, n_span
from .composite import LOCALITY_METRIC as COMPOSITE_LOCALITY
from .composite import SUCCESS_METRICS
from .stats import MKEB_METRICS, VIEW_LABEL, VIEWS, Estimate, pct

#: The claim the Findings section tests: the paper's averaged cross-lingual results.
PAPER = "the MEMLA paper (Xie et al., arXiv 2406.11566)"
#: The view that stands for the paper's "average over the other languages".
CLAIM_VIEW = "others"
#: The metric that shows what an edit costs unrelated knowledge: CounterFact's NS_cf where the
#: rows carry it (:mod:`.composite`), else loc_acc. NS is token F1 against the gold answer and
#: stays near 0 when the model never knew the neighbour; loc_acc compares with the unedited
#: model's own predictions, so it moves whenever the edit disturbs them.
LOCALITY_METRIC = "loc_acc"
LOCALITY_TEXT = {
    "loc_acc": "the share of neighbourhood answer tokens still predicted as the unedited model predicts them",
    COMPOSITE_LOCALITY: "the share of neighbourhood prompts where P(target_true) still beats P(target_new)",
}


# --------------------------------------------------------------------------- words


#: why MEMLA is not compared when the rows hold no single edit of it
NO_MEMLA = "there are no `memla` rows"


def _pp(x: Optional[float], signed: bool = True) -> str:
    """Percentage points as in the tables (signed unless told otherwise)."""
    return pct(x, signed)


def _interval(c: Comparison) -> str:
    return f"[{_pp(c.diff.lo)}, {_pp(c.diff.hi)}]"


def _n_text(comps: Sequence[Comparison]) -> str:
    if not comps:
        return "no paired records"
    return f"{n_span(comps)} record{'s' if max(c.diff.n for c in comps) != 1 else ''}"


def _same_everywhere(source: str, metric: str, methods: Sequence[str],
                     ests: Mapping[EstKey, Estimate]) -> Optional[float]:
    """The common mean when every compared method has the same mean in every view, else None."""
    means = [ests[(m, source, metric, v)].mean for m in methods for v in VIEWS if (m, source, metric, v) in ests]
    if not means or any(x is None for x in means):
        return None
    first = means[0]
    return first if all(abs(x - first) < 1e-12 for x in means) else None


def _by_baseline(comps: Sequence[Comparison], sign: float) -> str:
    """Name each baseline once: "rome on A by .. and B by ..; and ft_l on C by .."."""
    groups: dict[str, list[str]] = {}
    for c in comps:
        groups.setdefault(c.baseline, []).append(
            f"{c.where} by {_pp(sign * c.diff.mean, False)} points {_interval(c)}")
    parts = [f"{b} on {join_words(items)}" for b, items in groups.items()]
    return parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]


def _change(e: Optional[Estimate]) -> Optional[str]:
    """A paired change with its interval, or None when there is no interval to show."""
    if e is None or e.mean is None or e.lo is None or e.hi is None or e.n < 2:
        return None
    return f"{_pp(e.mean)} [{_pp(e.lo)}, {_pp(e.hi)}]"


def _locality_context(source: str, losses: Sequence[Comparison], deltas: Mapping[EstKey, Estimate]) -> str:
    """Locality of MEMLA and of the baselines it loses to, as changes against the unedited model.

    A baseline can top ES/PS by pushing the new object into every prompt, neighbours included;
    the reader deciding between editors needs that cost next to the loss. Empty when MEMLA
    or every such baseline lacks a locality change with an interval.
    """
    metric = COMPOSITE_LOCALITY if any(k[2] == COMPOSITE_LOCALITY for k in deltas) else LOCALITY_METRIC

    def both(method: str) -> Optional[str]:
        shown = [_change(deltas.get((method, source, metric, v))) for v in VIEWS]
        if any(x is None for x in shown):
            return None
        return " and ".join(f"{x} {VIEW_LABEL[v]}" for x, v in zip(shown, VIEWS))

    mine = both("memla")
    theirs = [(b, both(b)) for b in dict.fromkeys(c.baseline for c in losses)]
    theirs = [(b, t) for b, t in theirs if t is not None]
    if mine is None or not theirs:
        return ""
    items = [f"{t} for {b}" for b, t in theirs] + [f"{mine} for MEMLA"]
    return (f"Locality of the same edits: {metric} ({LOCALITY_TEXT[metric]}) changes against the unedited model by "
            f"{join_words(items)}.")


def _source_paragraph(source: str, present: Sequence[str], kinds: Mapping[str, str], comps: Sequence[Comparison],
                      ests: Mapping[EstKey, Estimate], metrics: Sequence[str],
                      deltas: Mapping[EstKey, Estimate], eligible: Optional[Sequence[str]] = None,
                      no_memla: str = NO_MEMLA) -> str:
    head = f"**Edit language {source}.**"
    baselines = baselines_of(present, kinds)
    if "memla" not in present:
        return f"{head} The comparison with the best baseline is not available: {no_memla}."
    if not baselines:
        return f"{head} The comparison with the best baseline is not available: there are no baseline rows."
    if not comps:
        return f"{head} The comparison with the best baseline is not available: no metric has values for both."
    pick = "the best one is picked per metric and view"
    if eligible is not None:
        pick += (f"; on {'/'.join(x for x in SUCCESS_METRICS if x in MKEB_METRICS)} only among those within the "
                 f"locality margin: {', '.join(eligible) if eligible else 'none'}")
    parts = [f"{head} Baselines compared: {', '.join(baselines)} ({pick}); each interval is paired over "
             f"{_n_text(comps)}."]
    wins = [c for c in comps if c.outcome == WIN]
    losses = [c for c in comps if c.outcome == LOSS]
    ties = [c for c in comps if c.outcome == TIE]
    bare = [c for c in comps if c.outcome is None]
    if wins:
        parts.append(f"MEMLA beats {_by_baseline(wins, 1.0)}.")
    if losses:
        parts.append(f"MEMLA loses to {_by_baseline(losses, -1.0)}.")
        locality = _locality_context(source, losses, deltas)
        if locality:
            parts.append(locality)
    if not wins and not losses:
        parts.append("No interval excludes zero: MEMLA neither beats nor loses to the best baseline on any "
                     "metric here.")
    if ties:
        parts.append(f"No difference the intervals support on {len(ties)} of {len(comps)} comparisons "
                     f"({', '.join(c.where for c in ties)}).")
    if bare:
        parts.append(f"{len(bare)} comparison{'s' if len(bare) != 1 else ''} "
                     f"({', '.join(c.where for c in bare)}) rest on fewer than 2 paired records or no resamples "
                     "and are not classified.")
    compared = ["memla"] + baselines
    flat = []
    for x in metrics:
        if x not in MKEB_METRICS:
            continue
        same = _same_everywhere(source, x, compared, ests)
        if same is not None:
            flat.append(f"{x} ({_pp(same, False)})")
    if flat:
        parts.append(f"Every compared method has the same mean in both views on {join_words(flat)}, so "
                     f"{'that metric separates' if len(flat) == 1 else 'those metrics separate'} none of them here.")
    return " ".join(parts)


def _verdict(c: Optional[Comparison]) -> str:
    if c is None:
        return "not tested (no values)"
    o = c.outcome
    word = {WIN: "supported", LOSS: "contradicted", TIE: "not resolved", None: "not resolved"}[o]
    if o is None:
        return f"{word} (no interval: {c.diff.n} paired record{'s' if c.diff.n != 1 else ''})"
    return f"{word} ({_pp(c.diff.mean)} [{_pp(c.diff.lo)}, {_pp(c.diff.hi)}] vs {c.baseline}, n = {c.diff.n})"


def claim_verdicts(comparisons: Sequence[Comparison], metrics: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The paper's claim per metric from one edit language's comparisons with the best baseline, others view:
    (["ES contradicted (...)", ...] in ``metrics`` order, {"supported"|"contradicted"|"not resolved": [metric]})."""
    tested = {c.metric: c for c in comparisons if c.view == CLAIM_VIEW and c.metric in MKEB_METRICS}
    items: list[str] = []
    tally: dict[str, list[str]] = {"supported": [], "contradicted": [], "not resolved": []}
    if not tested:
        return items, tally
    for x in metrics:
        c = tested.get(x)
        items.append(f"{x} {_verdict(c)}")
        if c is not None:
            tally[{WIN: "supported", LOSS: "contradicted"}.get(c.outcome or "", "not resolved")].append(x)
    return items, tally


def findings_section(sources: Sequence[str], present: Mapping[str, Sequence[str]], kinds: Mapping[str, str],
                     comparisons: Mapping[str, Sequence[Comparison]], ests: Mapping[EstKey, Estimate],
                     metrics: Sequence[str], extra: Sequence[str] = (),
                     deltas: Optional[Mapping[EstKey, Estimate]] = None, lead: Sequence[str] = (),
                     eligible: Optional[Mapping[str, Optional[Sequence[str]]]] = None,
                     no_memla: str = NO_MEMLA) -> list[str]:
    """Markdown lines of the "Findings" section: wins, losses and the paper-claim verdicts, in words.

    ``present``: the methods with rows per edit language; ``comparisons``: :func:`.compare.compare_with_best`
    per edit language; ``ests``: the per-method estimates the tables show; ``extra``: further
    paragraphs (the MEMLA variants', :mod:`.ablations`) placed before the paper's claim;
    ``deltas``: paired changes against the unedited model, for the locality of the baselines
    MEMLA loses to (left out without them); ``lead``: paragraphs placed first (the composite,
    locality and failures, :mod:`.composite_sections`); ``eligible``: per edit language the
    baselines within the locality margin (None: not measured); ``no_memla``: why there is no comparison
    when no single edit of ``memla`` is among the rows.
    """
    md = ["## Findings\n",
          "Written by the report from the \"MEMLA minus the best baseline\" intervals below, for the MKEB metrics "
          "(ES, PS, NS, MQ). MEMLA *beats* the best baseline where the difference's 95% interval lies above 0 and "
          "*loses* where it lies below 0; anything else is a difference the intervals do not support. Differences "
          "are in percentage points.\n"]
    md += [p + "\n" for p in lead if p]
    mk = [x for x in metrics if x in MKEB_METRICS]
    for s in sources:
        comps = [c for c in comparisons.get(s, []) if c.metric in MKEB_METRICS]
        md.append(_source_paragraph(s, present.get(s, []), kinds, comps, ests, mk, deltas or {},
                                    (eligible or {}).get(s), no_memla) + "\n")
    md += [p + "\n" for p in extra if p]

    md.append("**The paper's claim.** " + PAPER[0].upper() + PAPER[1:] + " reports MEMLA above the best baseline "
              "on the cross-lingual metrics averaged over languages. The test here uses the \"others\" view (per "
              "record, the mean over the evaluation languages other than the edit language): the claim is "
              "*supported* for a metric where MEMLA beats the best baseline, *contradicted* where it loses, and "
              "*not resolved* otherwise.\n")
    tested = {s: {c.metric: c for c in comparisons.get(s, []) if c.view == CLAIM_VIEW and c.metric in MKEB_METRICS}
              for s in sources}
    if not any(tested.values()):
        reason = (no_memla if not any("memla" in present.get(s, []) for s in sources)
                  else "there are no baseline rows" if not any(baselines_of(present.get(s, []), kinds) for s in sources)
                  else "no metric has values for MEMLA and a baseline")
        md.append(f"The comparison is not available: {reason}.\n")
        return md
    tally: dict[str, list[str]] = {"supported": [], "contradicted": [], "not resolved": []}
    for s in sources:
        if not tested[s]:
            md.append(f"- edit language {s}: not available (no MEMLA-versus-baseline comparison)")
            continue
        items, mine = claim_verdicts(list(tested[s].values()), mk)
        for key, got in mine.items():
            tally[key] += [f"{x} ({s})" for x in got]
        md.append(f"- edit language {s}: " + "; ".join(items))
    md.append("")
    total = sum(len(v) for v in tally.values())
    summary = (f"In all, of {total} (edit language, metric) pair{'s' if total != 1 else ''} tested, the claim is "
               f"supported on {len(tally['supported'])}, contradicted on {len(tally['contradicted'])} and not "
               f"resolved on {len(tally['not resolved'])}.")
    if len(tally["supported"]) == total:
        summary += " These runs support it on every metric tested."
    elif len(tally["contradicted"]) == total:
        summary += " These runs contradict it on every metric tested."
    else:
        if tally["supported"]:
            summary += f" Supported: {join_words(tally['supported'])}."
        if tally["contradicted"]:
            summary += f" Contradicted: {join_words(tally['contradicted'])}."
        if not tally["supported"] and not tally["contradicted"]:
            summary += " These runs neither support nor contradict it."
    md.append(summary + " Each verdict is a single 95% interval with no correction for testing several metrics "
              "and languages, and it holds for this model, these records and these settings only, not for the "
              "paper's setup.\n")
    return md


__all__ = ["CLAIM_VIEW", "LOCALITY_METRIC", "NO_MEMLA", "PAPER", "claim_verdicts", "findings_section"]
