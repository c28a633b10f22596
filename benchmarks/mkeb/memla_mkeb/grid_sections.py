"""Report sections of the tuning protocol: each method's grid and choice, and methods that do not edit.

Both only read what the run dirs hold: the rows' ``grid_point`` (written by the harness for
``<method>@<value>`` methods, :mod:`.grid`) and a ``method_status.json`` next to the rows
(:mod:`.method_status`). Without either, they print nothing.
"""
from __future__ import annotations

import posixpath
from typing import Any, Mapping, Sequence

from .composite import LOCALITY_METRIC
from .grid import Knob, format_value
from .markdown import csv_bytes, fmt_est, md_table, num
from .method_status import TEST, not_functional
from .operating_points import FILE_NAME as POINTS_FILE
from .operating_points import load as load_points
from .report_data import ReportData
from .select import RULE, select
from .stats import Estimate, pct

Files = dict[str, bytes]


def knobs_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Knob]:
    """Each grid method's knob and values, as the rows' ``grid_point`` fields give them, in grid order."""
    seen: dict[str, dict[int, Any]] = {}
    names: dict[str, str] = {}
    for r in rows:
        gp = r.get("grid_point")
        if gp:
            seen.setdefault(gp["method"], {})[int(gp["index"])] = gp["value"]
            names[gp["method"]] = gp["knob"]
    return [Knob(m, names[m], tuple(v for _, v in sorted(seen[m].items()))) for m in sorted(seen)]


def _part(x: Any) -> str:
    return "–" if x is None else pct(x)


def tuning_grid(d: ReportData, files: Files) -> list[str]:
    """Per edit language: every grid method's points (composite with interval, ES, PS, NS_cf) and the choice."""
    knobs = knobs_from_rows(d.rows)
    if not knobs:
        return []
    md = ["## Tuning grid: each method's operating point\n",
          f"Rule, fixed before any grid row existed (benchmarks/mkeb/README.md, \"Tuning grid\"): {RULE}. "
          "Each method tried the same number of values of one strength knob, on dev records only; "
          "the point marked ✓ is its choice. Values in percent; composite with its 95% bootstrap interval.\n"]
    csv_rows = []
    for s in d.sources:
        choices = select(d.rows, knobs, source=s, view="others", seed=d.seed, n_boot=d.n_boot)
        if not choices:
            continue
        table = []
        for c in choices:
            for p in c.points:
                mark = "✓" if p.name == c.chosen else ""
                table.append([c.method, f"{c.knob}={format_value(p.value)}", str(len(c.records)), str(p.edited),
                              fmt_est(p.composite), _part(p.parts.get("ES")), _part(p.parts.get("PS")),
                              _part(p.parts.get(LOCALITY_METRIC)), mark])
                csv_rows.append([s, c.method, c.knob, p.value, len(c.records), p.attempted, p.edited,
                                 num(p.composite.mean), num(p.composite.lo), num(p.composite.hi),
                                 num(p.parts.get("ES")), num(p.parts.get("PS")), num(p.parts.get(LOCALITY_METRIC)),
                                 int(p.name == c.chosen)])
        md += [f"### Edit language {s} (others view)\n",
               md_table(["method", "point", "common records", "edited", "composite", "ES", "PS", LOCALITY_METRIC,
                         "chosen"], table), ""]
        undecided = [c.method for c in choices if c.chosen is None]
        if undecided:
            md.append(f"No point has a composite yet for: {', '.join(undecided)}.\n")
    files[f"{d.files_dir}/tuning_grid.csv"] = csv_bytes(
        ["source", "method", "knob", "value", "common_records", "attempted", "edited", "composite", "composite_lo",
         "composite_hi", "ES", "PS", LOCALITY_METRIC, "chosen"], csv_rows)
    return md


def _pp(e: Mapping[str, Any], signed: bool = False) -> str:
    return fmt_est(Estimate(e["n"], e["mean"], e["lo"], e["hi"]), signed)


def _training_text(t: Mapping[str, Any]) -> str:
    b, tr = t.get("budget") or {}, t.get("final_train") or {}
    text = (f" Its hypernetwork was trained for {b.get('iterations')} iterations ({b.get('optimizer_updates')} "
            f"optimiser updates at lr {b.get('lr')}, {b.get('seconds')} s on {b.get('device', 'cpu')})")
    if tr:
        text += (f"; last training averages: edit loss {tr.get('loss/edit')}, locality loss {tr.get('loss/loc')}, "
                 f"edit token accuracy {tr.get('edit/acc')}")
    return text + "."


def method_status(d: ReportData, files: Files) -> list[str]:
    """Methods marked "not functional on this model" by the evidence files of the run dirs, with that evidence."""
    marked = not_functional(d.c.run_dirs)
    if not marked:
        return []
    md = ["## Methods not functional on this model\n",
          f"Test, on dev records: a method is {TEST}. These methods failed it; they are left out of the "
          "best baseline and their numbers elsewhere in this report describe a broken edit, not the method.\n"]
    for m, v in sorted(marked.items()):
        text = (f"- **{m}**: ES edit→edit {_pp(v['es_e2e'])} against the unedited model's "
                f"{_pp(v['unedited_es_e2e'])} on {len(v['records'])} records (source {v['source']}; paired "
                f"difference {_pp(v['difference'], signed=True)} points; evidence: `{v['run_dir']}/method_status.json`).")
        if v.get("training"):
            text += _training_text(v["training"])
        md.append(text)
    return md + [""]


def _recorded(d: ReportData) -> dict[str, tuple[set[str], dict[str, Any]]]:
    """Per method: the hparams hashes the plans of these rows recorded, and its catalog overrides."""
    out: dict[str, tuple[set[str], dict[str, Any]]] = {}
    for plan in d.c.plans:
        for m, spec in (plan.get("settings") or {}).get("methods", {}).items():
            if spec.get("hparams"):
                got = out.setdefault(m, (set(), dict(spec.get("overrides") or {})))
                got[0].add(spec["hparams"])
    return out


def _setting(m: str, entry: Mapping[str, Any], overrides: Mapping[str, Any], base: str) -> str:
    """"apply_scale=0.5", or the file's name for a method without a grid; a variant names its base and overrides."""
    if "knob" in entry:
        text = f"{entry['knob']}={format_value(entry['value'])}"
    else:
        text = f"`{posixpath.basename(entry['hparams'])}`"
    if base != m:
        text = f"{base}'s: {text}"
    if overrides:
        text += "; " + ", ".join(f"{k}={format_value(v)}" for k, v in sorted(overrides.items()))
    return text


def operating_points(d: ReportData, files: Files) -> list[str]:
    """Each method's settings in these rows and the dev evidence that chose them, checked by content hash."""
    docs = []
    for i, rd in enumerate(d.c.run_dirs):
        got = load_points(rd)
        if got is not None:
            shown = d.shown.run_dirs[i] if i < len(d.shown.run_dirs) else str(rd)
            where = posixpath.join(posixpath.dirname(shown.rstrip("/")) if got[0] else shown, POINTS_FILE)
            if all(where != w for w, _ in docs):
                docs.append((where, got[1]))
    if not docs:
        return []
    recorded = _recorded(d)
    planned = {m for plan in d.c.plans for m in (plan.get("settings") or {}).get("methods", {})}
    md = ["## Operating points\n",
          "The settings every method was edited with, pinned before the series' first row and chosen on dev records "
          "only (the test split chose nothing). A method the grid tuned shows its knob, the value chosen and that "
          "point's dev composite (others view, 95% interval); a variant runs another method's file with the "
          "overrides shown. \"hash\": ✓ when every plan of these rows recorded the pinned file's content hash for "
          "the method, so the rows were edited with exactly the file the selection is cited for.\n"]
    for where, doc in docs:
        entries = doc.get("methods", {})
        by_sha = {e["hparams_sha"]: m for m, e in entries.items()}
        table = []
        for m in d.methods:
            if m not in planned:  # rows whose plan was overwritten: say so rather than drop the method
                table.append([m, "–", "–", "no plan file of these run dirs names it, so its settings are not "
                              "checked", "–"])
                continue
            if m not in recorded:
                continue
            shas, overrides = recorded[m]
            base = m if m in entries else next((by_sha[x] for x in sorted(shas) if x in by_sha), None)
            if base is None:
                table.append([m, "–", "–", "not among the operating points", "–"])
                continue
            e = entries[base]
            dev = e.get("dev_composite")
            composite = fmt_est(Estimate(dev["n"], dev["mean"], dev["lo"], dev["hi"])) if dev and base == m else "–"
            chosen = e["chosen_by"] if base == m else f"as {base}"
            ok = "✓" if shas == {e["hparams_sha"]} else "differs: " + ", ".join(sorted(shas))
            table.append([m, _setting(m, e, overrides if base != m else {}, base), composite, chosen, ok])
        md += [f"From `{where}` (selection rule: {doc.get('rule')}; source {doc.get('source')}):\n",
               md_table(["method", "setting", "dev composite", "chosen by", "hash"], table), ""]
    return md


__all__ = ["knobs_from_rows", "method_status", "operating_points", "tuning_grid"]
