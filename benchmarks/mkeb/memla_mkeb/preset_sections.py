"""The refined MEMLA preset judged on its own: a report section and its Findings paragraphs.

The preset (catalog method ``memla_refined``) is not the paper's method, so the paper's claim is
checked for it separately from ``memla``, and it is set against ``memla`` and every baseline on
the same records: composite, ES, PS and the composite's locality (others view), each a paired
difference with its bootstrap interval. Its ablation rows (``memla_refined_no_<switch>``), where
present, show what each switch adds on these records, by the same paired composite the dev rule
read (``benchmarks/mkeb/preset_table.py``). Everything is computed from :class:`.ReportData`, so the
tables and the words agree; the report shows nothing here when no ``memla_refined`` rows exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .compare import Comparison, baselines_of, compare_with_best, pair_label, paired_difference
from .composite import LOCALITY_METRIC, SUCCESS_METRICS, composite_difference, composite_estimate
from .composite_sections import COMPOSITE_VERB
from .findings import CLAIM_VIEW, claim_verdicts
from .markdown import csv_bytes, fmt_est, md_table, num
from .report_data import ReportData
from .stats import MKEB_METRICS, VIEW_LABEL, Estimate, interval_side, pct

Files = dict[str, bytes]

#: The catalog name of the refined preset; its ablations are ``<PRESET>_no_<switch>``.
PRESET = "memla_refined"
ABLATION_PREFIX = f"{PRESET}_no_"
#: The per-metric columns of the head-to-head table (others view), after the composite.
METRICS = ("ES", "PS", LOCALITY_METRIC)
SIDE_WORD = {1: "preset higher", -1: "preset lower", 0: "no clear difference", None: "–"}


@dataclass(frozen=True)
class Versus:
    """The preset minus one other method on one edit language (others view), paired by record.

    ``mine`` and ``theirs``: the two composites on the paired records only, so the table's columns
    subtract to its difference even where the other method has fewer records (an ablation run on the
    first 30 of a run grown to 60).
    """

    other: str
    composite: Estimate
    composite_ok: bool
    metrics: dict[str, tuple[Estimate, bool]]
    mine: Optional[float] = None
    theirs: Optional[float] = None


def _has_preset(d: ReportData, s: str) -> bool:
    return PRESET in d.contenders(s)


def versus(d: ReportData, s: str, others: list[str], view: str = CLAIM_VIEW) -> list[Versus]:
    """The preset minus each of ``others`` (those with rows) on edit language ``s``."""
    out = []
    for o in others:
        if not d.has(o, s):
            continue
        a, b = d.triples[(PRESET, s, view)], d.triples[(o, s, view)]
        comp, ok = composite_difference(a, b, label=f"preset|{o}|{s}|{view}", seed=d.seed, n_boot=d.n_boot)
        shared = set(a) & set(b)
        mine, theirs = (composite_estimate({k: t[k] for k in shared}, label="", seed=d.seed, n_boot=0).mean
                        for t in (a, b))
        per = {}
        for x in METRICS:
            a, b = d.values.get((PRESET, s, x, view), {}), d.values.get((o, s, x, view), {})
            if a and b:
                per[x] = paired_difference(a, b, label=pair_label(PRESET, o, s, x, view), seed=d.seed,
                                           n_boot=d.n_boot)
        out.append(Versus(o, comp, ok, per, mine, theirs))
    return out


def comparators(d: ReportData, s: str) -> list[str]:
    """``memla`` first, then the baselines, as the report orders them."""
    ms = d.contenders(s)
    return (["memla"] if "memla" in ms else []) + baselines_of(ms, d.kinds)


def ablations(d: ReportData, s: str) -> list[str]:
    """The preset's switch ablations with rows for edit language ``s``."""
    return [m for m in d.present.get(s, []) if m.startswith(ABLATION_PREFIX)]


def _cell(e: Estimate, ok: bool) -> str:
    return fmt_est(e, signed=True) if ok else (f"{pct(e.mean, True)} (no interval)" if e.mean is not None else "–")


def _table(d: ReportData, s: str, vs: list[Versus], csv_rows: list[list[Any]], kind: str) -> str:
    head = ["vs", "pairs", f"composite {PRESET} (pairs)", "composite other (pairs)", "Δ composite [95% CI]"] + \
        [f"Δ {x} others [95% CI]" for x in METRICS] + ["composite interval says"]
    rows = []
    for v in vs:
        rows.append([v.other, str(v.composite.n), pct(v.mine), pct(v.theirs), _cell(v.composite, v.composite_ok),
                     *[_cell(*v.metrics[x]) if x in v.metrics else "–" for x in METRICS],
                     SIDE_WORD[interval_side(v.composite, v.composite_ok)]])
        for x, (e, _) in [("composite", (v.composite, v.composite_ok)), *v.metrics.items()]:
            csv_rows.append([s, kind, v.other, x, e.n, num(e.mean), num(e.lo), num(e.hi)])
    return md_table(head, rows)


def claim(d: ReportData, s: str) -> list[Comparison]:
    """The paper's claim for the preset: the preset minus the best baseline per MKEB metric (others view),
    ES/PS against the baselines within the locality margin, as for ``memla``."""
    return compare_with_best(s, d.contenders(s), d.kinds, d.metrics, d.ests, d.values, seed=d.seed,
                             n_boot=d.n_boot, restricted=SUCCESS_METRICS, eligible=d.eligible.get(s),
                             subject=PRESET)


def preset_section(d: ReportData, files: Files) -> list[str]:
    """The preset against ``memla`` and every baseline, and what each of its switches adds (the paper's claim
    for the preset is in the Findings, :func:`preset_findings`)."""
    sources = [s for s in d.sources if _has_preset(d, s)]
    if not sources or LOCALITY_METRIC not in d.metrics:
        return []
    md = ["## The refined preset\n",
          f"`{PRESET}` is not the paper's method: MEMLA with the switches its hparams file names "
          "(README, \"The refined preset\"), kept by a rule applied once on the dev records. Here it is set against "
          "the paper's MEMLA and every baseline on the same records, in the others view (per record, the mean over "
          "the evaluation languages other than the edit language): the composite, and each of its parts, as "
          f"{PRESET} minus the other method, paired by record, with 95% bootstrap intervals.\n"]
    csv_rows: list[list[Any]] = []
    for s in sources:
        md += [f"### Edit language {s}\n", _table(d, s, versus(d, s, comparators(d, s)), csv_rows, "vs"), ""]
        abl = ablations(d, s)
        if abl:
            md += ["What each switch adds on these records: the preset minus its ablation without that switch "
                   "(the quantity the dev rule read; positive: the switch helps).\n",
                   _table(d, s, versus(d, s, abl), csv_rows, "switch"), ""]
    files[f"{d.files_dir}/preset.csv"] = csv_bytes(
        ["source", "kind", "other", "metric", "n", "diff", "diff_lo", "diff_hi"], csv_rows)
    return md


def preset_findings(d: ReportData) -> list[str]:
    """One Findings paragraph per edit language with preset rows: composite against the best baseline and
    ``memla``, and the paper's claim for the preset."""
    out = []
    for s in d.sources:
        if not _has_preset(d, s) or LOCALITY_METRIC not in d.metrics:
            continue
        best = d.composite_best.get((s, CLAIM_VIEW))
        wanted = (["memla"] if d.has("memla", s) else []) + ([best[0]] if best else [])
        said = []
        for v in versus(d, s, wanted):
            side = interval_side(v.composite, v.composite_ok)
            verb = COMPOSITE_VERB[side]
            said.append(f"{pct(d.composites[(PRESET, s, CLAIM_VIEW)].mean)} is {verb} {v.other} "
                        f"{pct(d.composites[(v.other, s, CLAIM_VIEW)].mean)} ({_cell(v.composite, v.composite_ok)}, "
                        f"n = {v.composite.n})")
        items, tally = claim_verdicts(claim(d, s), [x for x in MKEB_METRICS if x in d.metrics])
        text = (f"**The refined preset, edit language {s}** (`{PRESET}`, not the paper's method; composite, "
                f"{VIEW_LABEL[CLAIM_VIEW]}): " + "; ".join(said) + ".")
        if items:
            text += (f" The paper's claim, checked for the preset as for MEMLA: supported on "
                     f"{len(tally['supported'])}, contradicted on {len(tally['contradicted'])}, not resolved on "
                     f"{len(tally['not resolved'])} of {sum(map(len, tally.values()))} metrics ("
                     + "; ".join(items) + ").")
        out.append(text)
    return out


__all__ = ["PRESET", "Versus", "ablations", "claim", "comparators", "preset_findings", "preset_section", "versus"]
