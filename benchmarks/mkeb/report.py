"""``memla-mkeb-report RUN_DIR... [--out FILE]``: tables, intervals and plots from run dirs.

Reads every ``results*.jsonl`` of the given run dirs (a dir without one is searched
recursively, so a multirun or results folder can be passed whole), merges shards and
sittings (a key seen twice must carry the same scores, else it is an error), and writes:

* ``FILE`` (default ``report.md`` in the first run dir): markdown with the command that
  regenerates it, which run dir ran on which hardware, the Findings in words
  (:mod:`memla_mkeb.findings`), per-method tables, deltas against the unedited model, MEMLA
  minus the best baseline, MEMLA's variants minus MEMLA (:mod:`memla_mkeb.ablations`), record
  counts, seeds, per-edit wall time and restore checks;
* ``<FILE stem>_files/``: CSV tables and PNG plots.

The output depends only on the input files and the options: no timestamps, fixed float
formatting, seeded bootstrap, sorted orders, paths shown as they were given on the command
line and links relative to the markdown file. Running it twice gives identical bytes.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import posixpath
import re
import shlex
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from memla_plugin.errors import MEMLAError

from . import costs, store
from .ablations import compare_variants, variant_changes, variants_paragraph, variants_table
from .findings import LOSS, TIE, WIN, compare_with_best, findings_section
from .settings import MKEB_LANGS
from .stats import (
    EASYEDIT_METRICS,
    MKEB_METRICS,
    VIEW_LABEL,
    VIEWS,
    Estimate,
    bootstrap,
    by_record,
    ordered_values,
    paired,
    pct,
)

ALL_METRICS = MKEB_METRICS + EASYEDIT_METRICS
BASELINE_ORDER = ("rome", "memit", "mend", "ft_l", "ft_m", "lora")
METRIC_NEEDS = {
    "ES": "needs target_true (the pre-edit answer): ES compares P(target_new) with P(target_true)",
    "PS": "needs target_true (the pre-edit answer) and paraphrase prompts",
    "NS": "needs neighbourhood prompts with answers",
    "MQ": "needs multi-hop questions with their new answers",
    "rel_acc": "needs the edit prompt and target_new",
    "gen_acc": "needs paraphrase prompts",
    "loc_acc": "needs neighbourhood prompts with answers and the unedited model's outputs",
    "port_acc": "needs multi-hop questions with their new answers",
}
METRIC_TITLE = {
    "ES": "edit success", "PS": "paraphrase score", "NS": "neighbourhood score", "MQ": "multi-hop score",
    "rel_acc": "reliability (token acc.)", "gen_acc": "generalisation (token acc.)",
    "loc_acc": "locality (token acc.)", "port_acc": "portability (token acc.)",
}


VERDICT_TEXT = {WIN: "MEMLA higher", LOSS: "MEMLA lower", TIE: "no clear difference", None: "–"}


class ReportError(MEMLAError, ValueError):
    """The run dirs cannot be reported on (missing, empty, conflicting duplicates...)."""


# --------------------------------------------------------------------------- loading


@dataclass
class Collected:
    run_dirs: list[Path]
    files: list[Path]
    rows: dict[str, dict[str, Any]]
    origin: dict[str, Path]
    duplicates: int = 0
    plans: list[dict[str, Any]] = field(default_factory=list)
    envs: list[dict[str, Any]] = field(default_factory=list)
    restore_failures: list[dict[str, Any]] = field(default_factory=list)
    unedited: list[dict[str, Any]] = field(default_factory=list)
    #: results file -> index (into ``run_dirs``) of the run dir it was found under
    file_run_dir: dict[Path, int] = field(default_factory=dict)
    #: ``--common-records``: whether rows were limited to the records every method of a run dir has
    common_records: bool = False
    #: rows left out by ``--common-records``
    left_out: int = 0


def _result_files(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        raise ReportError(f"run dir not found: {run_dir}")
    files = store.iter_files(run_dir, store.RESULTS_GLOB)
    if not files:
        files = sorted(p for p in run_dir.rglob(store.RESULTS_GLOB) if p.is_file())
    if not files:
        raise ReportError(f"no results*.jsonl in {run_dir} (or below it)")
    return files


def _comparable(row: dict[str, Any]) -> str:
    return json.dumps({"status": row.get("status"), "scores": row.get("scores")}, sort_keys=True)


def common_record_rows(
    pairs: Sequence[tuple[Path, dict[str, Any]]], run_dir_of: dict[Path, int]
) -> tuple[list[tuple[Path, dict[str, Any]]], int]:
    """Keep the rows of the records that every method of the same run dir has for the same edit language.

    A run that grows in steps (first 10 records, then 20, ...) holds more records for the methods
    it ran first whenever a sitting ended mid-step; this gives every method the same records.
    Returns (kept rows, number of rows left out).
    """
    have: dict[tuple[int, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path, row in pairs:
        have[(run_dir_of.get(path, -1), str(row.get("source")))][str(row.get("method"))].add(str(row.get("record_id")))
    common = {g: set.intersection(*by_method.values()) for g, by_method in have.items()}
    kept = [(p, r) for p, r in pairs
            if str(r.get("record_id")) in common[(run_dir_of.get(p, -1), str(r.get("source")))]]
    return kept, len(pairs) - len(kept)


def collect(run_dirs: Sequence[Path], *, common_records: bool = False) -> Collected:
    """Read and merge the rows of ``run_dirs`` (dedupe by key; conflicting duplicates are errors).

    ``common_records``: keep only the records every method of a run dir has (:func:`common_record_rows`).
    """
    files: list[Path] = []
    file_run_dir: dict[Path, int] = {}
    for i, d in enumerate(run_dirs):
        for f in _result_files(Path(d)):
            if f.resolve() not in {x.resolve() for x in files}:
                files.append(f)
                file_run_dir[f] = i
    rows: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    dup = 0
    pairs = list(store.rows_of(files))
    left_out = 0
    if common_records:
        pairs, left_out = common_record_rows(pairs, file_run_dir)
    for path, row in pairs:
        key = row.get("key")
        if not key:
            raise ReportError(f"{path}: a row without 'key'")
        if key in rows:
            if _comparable(rows[key]) != _comparable(row):
                raise ReportError(
                    f"conflicting results for {key}: {origin[key]} and {path} hold different scores; "
                    f"remove one of them"
                )
            dup += 1
            continue
        rows[key] = row
        origin[key] = path
    out = Collected(list(map(Path, run_dirs)), files, rows, origin, dup, file_run_dir=file_run_dir,
                    common_records=common_records, left_out=left_out)
    kept_ids = {str(r.get("record_id")) for r in rows.values()}
    seen_dirs: list[Path] = []
    for f in files:
        if f.parent not in seen_dirs:
            seen_dirs.append(f.parent)
    for d in seen_dirs:
        for p in sorted(d.glob("plan*.json")):
            out.plans.append(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted(d.glob("env*.json")):
            out.envs.append(json.loads(p.read_text(encoding="utf-8")))
        out.restore_failures += store.read_jsonl(d / store.RESTORE_FAILURES)
        for p in store.iter_files(d, store.UNEDITED_GLOB):
            out.unedited += [{"record_id": r.get("record_id"), "eval_s": r.get("eval_s")} for r in store.read_jsonl(p)
                             if not common_records or str(r.get("record_id")) in kept_ids]
    # one method, one setting: rows of a method made with different configs must not mix
    ids: dict[str, dict[str, Path]] = defaultdict(dict)
    for key, row in rows.items():
        ids[row["method"]].setdefault(str(row.get("cfg_id")), origin[key])
    for method, by_id in sorted(ids.items()):
        if len(by_id) > 1:
            where = ", ".join(f"{k} in {v}" for k, v in sorted(by_id.items()))
            raise ReportError(f"rows of method {method!r} come from different settings ({where}); report them separately")
    return out


# --------------------------------------------------------------------------- formatting


def fmt_est(e: Estimate, signed: bool = False) -> str:
    if e.n == 0 or e.mean is None:
        return "–"
    return f"{pct(e.mean, signed)} [{pct(e.lo, signed)}, {pct(e.hi, signed)}]"


def num(x: Optional[float], digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def secs(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}"


def gib(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


# --------------------------------------------------------------------------- the command line

PROG = "memla-mkeb-report"
DEFAULT_BOOT = 2000
DEFAULT_SEED = 0


def _shown_path(p: Path | str) -> str:
    """A path as the report prints it: as given, or relative to the current dir when it lies below it.

    Keeping paths relative is what lets a fresh clone regenerate the same bytes.
    """
    path = Path(p)
    if path.is_absolute():
        for a, b in ((path, Path.cwd()), (path.resolve(), Path.cwd().resolve())):
            try:
                return a.relative_to(b).as_posix()
            except ValueError:
                continue
    return path.as_posix()


@dataclass(frozen=True)
class Invocation:
    """The options of one report with its paths as the command line gave them (printed in the header)."""

    run_dirs: tuple[str, ...]
    out: Optional[str] = None
    n_boot: int = DEFAULT_BOOT
    seed: int = DEFAULT_SEED
    plots: bool = True
    common_records: bool = False

    @classmethod
    def of(cls, run_dirs: Sequence[Path | str], out: Optional[Path | str] = None, *, n_boot: int = DEFAULT_BOOT,
           seed: int = DEFAULT_SEED, plots: bool = True, common_records: bool = False) -> "Invocation":
        """From real paths (absolute ones below the current dir are shown relative to it)."""
        return cls(tuple(_shown_path(d) for d in run_dirs), None if out is None else _shown_path(out),
                   int(n_boot), int(seed), bool(plots), bool(common_records))

    def argv(self) -> list[str]:
        """The arguments after the program name; options left at their defaults are omitted."""
        a = list(self.run_dirs)
        if self.out is not None:
            a += ["--out", self.out]
        if self.n_boot != DEFAULT_BOOT:
            a += ["--bootstrap", str(self.n_boot)]
        if self.seed != DEFAULT_SEED:
            a += ["--seed", str(self.seed)]
        if not self.plots:
            a.append("--no-plots")
        if self.common_records:
            a.append("--common-records")
        return a

    def command(self) -> str:
        """The shell command that regenerates the report (run from the dir the paths are relative to)."""
        return " ".join([PROG] + [shlex.quote(x) for x in self.argv()])

    def out_path(self) -> str:
        """Where the command writes the markdown (``--out`` or the default in the first run dir)."""
        return self.out if self.out is not None else posixpath.join(self.run_dirs[0], "report.md")

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "Invocation":
        """Parse ``memla-mkeb-report`` arguments, keeping the paths exactly as written."""
        try:
            a = parse_args(argv)
        except SystemExit as exc:
            raise ReportError(f"bad {PROG} arguments: {' '.join(argv)}") from exc
        return cls(tuple(d.as_posix() for d in a.run_dirs), None if a.out is None else a.out.as_posix(),
                   a.bootstrap, a.seed, not a.no_plots, a.common_records)

    @classmethod
    def from_markdown(cls, text: str) -> "Invocation":
        """The invocation recorded on a report's ``Regenerate:`` line."""
        m = re.search(r"^Regenerate: `([^`\n]+)`", text, re.M)
        if not m:
            raise ReportError("the report has no 'Regenerate: `memla-mkeb-report ...`' line")
        words = shlex.split(m.group(1))
        if not words or words[0] != PROG:
            raise ReportError(f"the Regenerate line does not run {PROG}: {m.group(1)}")
        return cls.from_argv(words[1:])


# --------------------------------------------------------------------------- the report


def method_kinds(c: Collected) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for plan in c.plans:
        for m in plan.get("methods", []):
            kinds.setdefault(m["name"], m["kind"])
    for row in c.rows.values():
        name = row["method"]
        if name not in kinds:
            kinds[name] = row.get("kind") or (
                "unedited" if name == "unedited" else "memla" if name.startswith("memla") else "easyedit"
            )
    return kinds


def method_order(names: Sequence[str], kinds: dict[str, str]) -> list[str]:
    def rank(n: str) -> tuple:
        k = kinds.get(n, "easyedit")
        if k == "unedited":
            return (0, 0, n)
        if k == "memla":
            return (1, 0 if n == "memla" else 1, n)
        return (2, BASELINE_ORDER.index(n) if n in BASELINE_ORDER else len(BASELINE_ORDER), n)

    return sorted(set(names), key=rank)


def lang_order(langs: Sequence[str]) -> list[str]:
    return sorted(set(langs), key=lambda x: (MKEB_LANGS.index(x) if x in MKEB_LANGS else len(MKEB_LANGS), x))


@dataclass
class Report:
    markdown: str
    files: dict[str, bytes]


def _shown_dir(c: Collected, shown: Invocation, results_file: Path) -> str:
    """The run dir of a results file, spelled from the run dir given on the command line."""
    i = c.file_run_dir.get(results_file, 0)
    given = shown.run_dirs[i] if i < len(shown.run_dirs) else _shown_path(c.run_dirs[i])
    try:
        sub = results_file.parent.relative_to(c.run_dirs[i]).as_posix()
    except (ValueError, IndexError):
        return _shown_path(results_file.parent)
    return given if sub == "." else posixpath.normpath(posixpath.join(given, sub))


def build(c: Collected, out: Path, *, n_boot: int = 2000, seed: int = 0, plots: bool = True,
          shown: Optional[Invocation] = None) -> Report:
    """Compute every table (and the plot files) of the report; nothing is written here.

    ``shown``: the command line printed in the header (default: ``c.run_dirs`` and ``out``).
    """
    if shown is None:
        shown = Invocation.of(c.run_dirs, out, n_boot=n_boot, seed=seed, plots=plots, common_records=c.common_records)
    kinds = method_kinds(c)
    rows = list(c.rows.values())
    methods = method_order([r["method"] for r in rows], kinds)
    sources = lang_order([r["source"] for r in rows])
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[(r["method"], r["source"])].append(r)
    for v in grouped.values():
        v.sort(key=lambda r: (r.get("record_index", 0), str(r["record_id"])))
    scored = [r for r in rows if r.get("status") != "skipped" and r.get("scores")]
    targets = lang_order([t for r in scored for t in r["scores"]])
    files_dir_name = out.stem + "_files"
    files: dict[str, bytes] = {}
    md: list[str] = []

    # ---------------------------------------------------------------- header
    md.append("# MKEB benchmark report\n")
    md.append("Generated by `memla-mkeb-report` from the run directories below; every number, and every sentence "
              "of the Findings, is computed from their `results*.jsonl` files.\n")
    md.append(f"Regenerate: `{shown.command()}` (run from the directory these paths are relative to; the same "
              "inputs give the same bytes)\n")
    md.append("- Run directories: " + ", ".join(f"`{d}`" for d in shown.run_dirs))
    md.append(f"- Result rows: {len(rows)} (files: {len(c.files)}; identical duplicate rows merged: {c.duplicates})")
    if c.common_records:
        md.append(f"- Records: only those that every method of a run dir has for an edit language "
                  f"(`--common-records`); {c.left_out} rows of further records, from runs still growing, left out")
    model_names = sorted({f"{p['model'].get('name')} ({p['model'].get('name_or_path')})"
                          for p in c.plans if isinstance(p.get("model"), dict)})
    data_files = sorted({Path(p["data_path"]).name for p in c.plans if p.get("data_path")})
    id_sets = sorted({str(p["data_ids"]) if p.get("data_ids") else "all records in file order" for p in c.plans})
    if model_names:
        md.append("- Model: " + ", ".join(f"`{m}`" for m in model_names))
    if data_files:
        md.append("- Data: " + ", ".join(f"`{d}`" for d in data_files) + f" (record selection: {', '.join(id_sets)})")
    seeds = sorted({int(r.get("seed", 0)) for r in rows})
    md.append(f"- Seeds: editing/evaluation seed {', '.join(map(str, seeds))}; bootstrap seed {seed}, "
              f"{n_boot} resamples of records, 95% percentile intervals")
    md.append(f"- Edit languages: {' '.join(sources)}; evaluation languages: {' '.join(targets)}")
    hw = sorted({str(r.get("hardware")) for r in rows})
    md.append("- Hardware: " + "; ".join(hw) + " (which run ran where: see below)")
    pkgs: dict[str, set[str]] = defaultdict(set)
    for env in c.envs:
        for name, ver in (env.get("packages") or {}).items():
            if ver and name in ("torch", "transformers", "memla-plugin"):
                pkgs[name].add(ver)
        if env.get("easyedit_commit"):
            pkgs["EasyEdit"].add(str(env["easyedit_commit"])[:7])
    if pkgs:
        md.append("- Software: " + ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(pkgs.items())))
    md.append("- Scores are percentages. \"edit→edit\": evaluated in the edit language; \"others\": per record the "
              "mean over the other evaluation languages, then the mean over records. Intervals: bootstrap over "
              "records. Δ: paired difference to the unedited model on the same records.")
    md.append("")

    # ---------------------------------------------------------------- runs and hardware
    md.append("## Runs and hardware\n")
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for key, r in c.rows.items():
        by_run[(_shown_dir(c, shown, c.origin[key]), str(r.get("hardware")))].append(r)
    run_rows = []
    for (d, h), g in sorted(by_run.items()):
        run_rows.append([f"`{d}`", ", ".join(method_order([r["method"] for r in g], kinds)),
                         " ".join(lang_order([r["source"] for r in g])),
                         str(len({str(r["record_id"]) for r in g})), str(len(g)), h])
    md.append(md_table(["run dir", "methods", "edit langs", "records", "rows", "hardware"], run_rows))
    md.append("")
    findings_at = len(md)  # the Findings go here once the comparisons are computed

    # ---------------------------------------------------------------- counts and restore checks
    md.append("## Records, failures and restore checks\n")
    count_rows, csv_counts = [], []
    n_fail_restore = Counter(str(f.get("key", "")).split("|")[0] for f in c.restore_failures)
    for m in methods:
        for s in sources:
            g = grouped.get((m, s), [])
            if not g:
                continue
            st = Counter(r.get("status") for r in g)
            checks = sum(1 for r in g if (r.get("restore") or {}).get("checked"))
            errs = Counter((r.get("error") or {}).get("type") for r in g if r.get("status") == "error")
            err_txt = ", ".join(f"{k} ×{v}" for k, v in sorted(errs.items())) or "–"
            count_rows.append([m, s, str(len(g)), str(st.get("ok", 0)), str(st.get("error", 0)),
                               str(st.get("skipped", 0)), str(checks), err_txt])
            csv_counts.append([m, s, len(g), st.get("ok", 0), st.get("error", 0), st.get("skipped", 0), checks])
    md.append(md_table(["method", "edit lang", "records", "edited", "failed edits", "skipped", "restore checks passed",
                        "failure types"], count_rows))
    total_checks = sum(r[6] for r in csv_counts)
    md.append("")
    md.append(f"Restore checks: {total_checks} passed, {len(c.restore_failures)} mismatches"
              + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(n_fail_restore.items())) + ")"
                 if c.restore_failures else "")
              + ". After every edit the weights are restored and every parameter is checked bit for bit against "
                "the model as loaded (run.restore_check: SHA-256 digests by default, or a full copy); a failed edit is scored on the unchanged model and counted above; a skipped record "
                "(the method needs the subject in the prompt and it is not there verbatim) is left out of that "
                "method's means.\n")
    _csv_bytes(files, f"{files_dir_name}/counts.csv",
               ["method", "source", "records", "edited", "failed", "skipped", "restore_checks"], csv_counts)

    # ---------------------------------------------------------------- skipped metrics
    avail: dict[str, list[int]] = {m: [0, 0] for m in ALL_METRICS}
    for r in scored:
        for lang, sc in r["scores"].items():
            for m in ALL_METRICS:
                avail[m][1] += 1
                avail[m][0] += sc.get(m) is not None
    data_reasons: dict[str, str] = {}
    for p in c.plans:
        data_reasons.update((p.get("data_meta") or {}).get("unavailable_metrics") or {})
    skipped = [m for m in ALL_METRICS if avail[m][1] and avail[m][0] == 0]
    partial = [m for m in ALL_METRICS if 0 < avail[m][0] < avail[m][1]]
    metrics = [m for m in ALL_METRICS if m not in skipped]
    if skipped or partial:
        md.append("## Metrics the data does not support\n")
        for m in skipped:
            why = data_reasons.get(m) or METRIC_NEEDS[m]
            md.append(f"- **{m}** skipped: no value in any row; {why}.")
        for m in partial:
            md.append(f"- **{m}** computed for {avail[m][0]} of {avail[m][1]} (record, language) pairs; "
                      f"it {METRIC_NEEDS[m]}, which the other pairs lack.")
        md.append("")

    # ---------------------------------------------------------------- per-source tables
    summary_csv: list[list[Any]] = []
    vs_best_csv: list[list[Any]] = []
    ests: dict[tuple[str, str, str, str], Estimate] = {}
    values: dict[tuple[str, str, str, str], dict[str, float]] = {}
    deltas: dict[tuple[str, str, str, str], Estimate] = {}  # paired change against the unedited model
    for s in sources:
        for m in methods:
            for metric in metrics:
                for view in VIEWS:
                    vals = by_record(grouped.get((m, s), []), s, metric, view)
                    values[(m, s, metric, view)] = vals
                    ests[(m, s, metric, view)] = bootstrap(
                        ordered_values(vals), label=f"{m}|{s}|{metric}|{view}", seed=seed, n_boot=n_boot)
    present: dict[str, list[str]] = {}
    comparisons: dict[str, list[Any]] = {}
    changes = variant_changes(c.plans)
    variant_words: list[str] = []
    variants_csv: list[list[Any]] = []
    for s in sources:
        ms = [m for m in methods if grouped.get((m, s))]
        md.append(f"## Edit language {s}\n")
        for family, title in ((MKEB_METRICS, "MKEB metrics"), (EASYEDIT_METRICS, "EasyEdit token-accuracy family")):
            fam = [x for x in family if x in metrics]
            if not fam:
                continue
            header = ["method", "n"] + [f"{x} {VIEW_LABEL[v]}" for x in fam for v in VIEWS]
            table, dtable = [], []
            for m in ms:
                n = sum(1 for r in grouped[(m, s)] if r.get("status") != "skipped")
                table.append([m, str(n)] + [fmt_est(ests[(m, s, x, v)]) for x in fam for v in VIEWS])
                if m != "unedited" and grouped.get(("unedited", s)):
                    drow = [m, ""]
                    for x in fam:
                        for v in VIEWS:
                            d = paired(values[(m, s, x, v)], values[("unedited", s, x, v)])
                            e = bootstrap(d, label=f"delta|{m}|{s}|{x}|{v}", seed=seed, n_boot=n_boot)
                            deltas[(m, s, x, v)] = e
                            drow.append(fmt_est(e, signed=True))
                            est = ests[(m, s, x, v)]
                            summary_csv.append([s, m, x, v, est.n, num(est.mean), num(est.lo), num(est.hi),
                                                e.n, num(e.mean), num(e.lo), num(e.hi)])
                    drow[1] = str(min(len(paired(values[(m, s, x, v)], values[("unedited", s, x, v)]))
                                      for x in fam for v in VIEWS))
                    dtable.append(drow)
                else:
                    for x in fam:
                        for v in VIEWS:
                            est = ests[(m, s, x, v)]
                            summary_csv.append([s, m, x, v, est.n, num(est.mean), num(est.lo), num(est.hi),
                                                "", "", "", ""])
            md.append(f"### {title} (edit language {s})\n")
            md.append(md_table(header, table))
            md.append("")
            if dtable:
                md.append(f"Δ vs unedited (paired, same records; n = smallest number of pairs in the row):\n")
                md.append(md_table(["method", "n"] + header[2:], dtable))
                md.append("")

        # MEMLA minus the best baseline (the same comparisons feed the Findings)
        present[s] = ms
        comparisons[s] = comps = compare_with_best(s, ms, kinds, metrics, ests, values, seed=seed, n_boot=n_boot)
        if comps:
            md.append(f"### MEMLA minus the best baseline (edit language {s})\n")
            md.append("Best baseline: the baseline (host editor; not the unedited model, not a MEMLA variant) with "
                      "the highest mean on that metric and view; the difference is paired over the records both "
                      "have.\n")
            vrows = []
            for cmp in comps:
                e = cmp.diff
                vrows.append([cmp.metric, VIEW_LABEL[cmp.view], cmp.baseline, pct(cmp.memla.mean), pct(cmp.base.mean),
                              fmt_est(e, signed=True), str(e.n), VERDICT_TEXT[cmp.outcome]])
                vs_best_csv.append([s, cmp.metric, cmp.view, cmp.baseline, num(cmp.memla.mean), num(cmp.base.mean),
                                    e.n, num(e.mean), num(e.lo), num(e.hi)])
            md.append(md_table(["metric", "view", "best baseline", "MEMLA", "baseline", "MEMLA − baseline [95% CI]",
                                "pairs", "interval says"], vrows))
            md.append("")

        # MEMLA's variants (ablations) minus full MEMLA, paired on the records both have
        vcomps = compare_variants(s, ms, kinds, metrics, values, seed=seed, n_boot=n_boot)
        if vcomps:
            md.append(f"### MEMLA variants minus full MEMLA (edit language {s})\n")
            md.append("Each ablation against `memla` itself, paired over the records both have (the per-method "
                      "tables above may average a variant and MEMLA over different records); \"changes\" is the "
                      "variant's hparams override. Percentage points, 95% bootstrap intervals.\n")
            for family, title in ((MKEB_METRICS, "MKEB metrics"), (EASYEDIT_METRICS, "EasyEdit token-accuracy family")):
                fam = [x for x in family if x in metrics]
                if fam:
                    header, vtable = variants_table([v for v in vcomps if v.metric in fam], fam, changes)
                    md.append(f"{title}:\n")
                    md.append(md_table(header, vtable))
                    md.append("")
            variant_words.append(variants_paragraph(s, vcomps, changes))
            for v in vcomps:
                variants_csv.append([s, v.variant, changes.get(v.variant, ""), v.metric, v.view, v.diff.n,
                                     num(v.diff.mean), num(v.diff.lo), num(v.diff.hi)])

    md[findings_at:findings_at] = findings_section(sources, present, kinds, comparisons, ests, metrics,
                                                   extra=variant_words, deltas=deltas)

    _csv_bytes(files, f"{files_dir_name}/summary.csv",
               ["source", "method", "metric", "view", "n", "mean", "ci_lo", "ci_hi",
                "delta_n", "delta_mean", "delta_lo", "delta_hi"], summary_csv)
    if vs_best_csv:
        _csv_bytes(files, f"{files_dir_name}/memla_vs_best.csv",
                   ["source", "metric", "view", "best_baseline", "memla", "baseline", "n", "diff", "diff_lo", "diff_hi"],
                   vs_best_csv)
    if variants_csv:
        _csv_bytes(files, f"{files_dir_name}/variants_vs_memla.csv",
                   ["source", "variant", "changes", "metric", "view", "n", "diff", "diff_lo", "diff_hi"], variants_csv)

    # ---------------------------------------------------------------- source x target matrices
    matrix: dict[tuple[str, str], dict[str, dict[str, Optional[float]]]] = {}
    matrix_csv = []
    for m in methods:
        for x in metrics:
            grid: dict[str, dict[str, Optional[float]]] = {}
            for s in sources:
                g = [r for r in grouped.get((m, s), []) if r.get("status") != "skipped" and r.get("scores")]
                if not g:
                    continue
                grid[s] = {}
                for t in targets:
                    vals = [float(r["scores"][t][x]) for r in g if t in r["scores"] and r["scores"][t].get(x) is not None]
                    grid[s][t] = sum(vals) / len(vals) if vals else None
                    matrix_csv.append([m, x, s, t, len(vals), num(grid[s][t])])
            matrix[(m, x)] = grid
    _csv_bytes(files, f"{files_dir_name}/matrix.csv", ["method", "metric", "source", "target", "n", "mean"], matrix_csv)

    # ---------------------------------------------------------------- wall time
    md.append("## Per-edit wall time\n")
    trows, tcsv = [], []
    attr_index = costs.attribution_index(rows)
    any_cached = False
    ran = {m: [r for s in sources for r in grouped.get((m, s), []) if r.get("status") in ("ok", "error")]
           for m in methods}  # rows with an edit attempt (not skipped), every edit language
    for m in methods:
        edited = [r for r in ran[m] if kinds.get(m) != "unedited"]
        if not edited:
            continue
        e_s = sorted(float(r.get("edit_s") or 0.0) for r in edited)
        v_s = [float(r.get("eval_s") or 0.0) for r in edited if r.get("status") == "ok"]
        med = e_s[len(e_s) // 2] if len(e_s) % 2 else (e_s[len(e_s) // 2 - 1] + e_s[len(e_s) // 2]) / 2
        mean_e = sum(e_s) / len(e_s)
        mean_v = sum(v_s) / len(v_s) if v_s else None
        cpu = [float(r["edit_cpu_s"]) for r in edited if r.get("edit_cpu_s") is not None]
        mean_cpu = sum(cpu) / len(cpu) if cpu else None
        hwm = "; ".join(sorted({str(r.get("hardware")) for r in edited}))
        ca = costs.with_cached_attribution(edited, attr_index)
        if ca.cached_edits:
            any_cached = True
            with_txt = secs(ca.mean_edit_s) if ca.complete else f"n/a ({ca.cached - ca.found} of {ca.cached} unmeasured)"
            cached_txt = f"{ca.cached_edits} ({ca.cached} language{'s' if ca.cached != 1 else ''})"
            with_num = num(ca.mean_edit_s, 3)
        else:
            cached_txt, with_txt, with_num = "0", "–", ""
        trows.append([m, str(len(e_s)), secs(mean_e), secs(med), secs(sum(e_s)), secs(mean_cpu), secs(mean_v),
                      cached_txt, with_txt, hwm])
        tcsv.append([m, len(e_s), num(mean_e, 3), num(med, 3), num(sum(e_s), 3), num(mean_cpu, 3), num(mean_v, 3),
                     ca.cached_edits, ca.cached, with_num, hwm])
    if trows:
        md.append(md_table(["method", "edits", "edit s (mean)", "edit s (median)", "edit s (total)",
                            "edit CPU s (mean)", f"evaluation s (mean, {len(targets)} languages)",
                            "edits with cached attribution", "edit s + cached attribution (mean)", "hardware"], trows))
        md.append("")
        ref_s = [float(r.get("eval_s") or 0.0) for r in c.unedited]
        ref_ids = {str(r.get("record_id")) for r in c.unedited}
        # a record evaluated again by another run dir (an ablation run on the same ids) counts each time
        ref_n = (f"{len(ref_s)} records" if len(ref_ids) == len(ref_s)
                 else f"{len(ref_s)} evaluations of {len(ref_ids)} records")
        ref_txt = (f" (evaluation of the unedited model: {ref_n}, mean {secs(sum(ref_s) / len(ref_s))} s)"
                   if ref_s else "")
        md.append("Wall time is what the run took on its machine (other jobs on a shared machine slow it); CPU s is "
                  "the process's CPU time summed over its threads. The unedited model's scores are computed once per "
                  f"record and reused for every method and edit language{ref_txt}.\n")
        if any_cached:
            md.append("MEMLA rows share one attribution per record and language through the neuron cache: the first "
                      "row that needs it computes it, later rows (another edit language, an ablation) read it, and "
                      "their edit time leaves it out. \"edit s + cached attribution\" adds back, for each cached "
                      "language, the attribution time measured by the row of this report that computed it.\n")
    _csv_bytes(files, f"{files_dir_name}/timing.csv",
               ["method", "edits", "edit_s_mean", "edit_s_median", "edit_s_total", "edit_cpu_s_mean", "eval_s_mean",
                "cached_attribution_edits", "cached_attributions", "edit_s_with_cached_attribution_mean", "hardware"],
               tcsv)

    # ---------------------------------------------------------------- memory
    peaks = {m: costs.row_peaks(ran[m]) for m in methods}
    if any(p.measured for p in peaks.values()):
        md.append("## Peak memory\n")
        prow, pcsv = [], []
        for m in methods:
            p = peaks[m]
            if not p.rows:
                continue
            prow.append([m, f"{p.measured} of {p.rows}", gib(p.mean_gib), gib(p.max_gib), gib(p.max_start_gib)])
            pcsv.append([m, p.rows, p.measured, num(p.mean_gib), num(p.max_gib), num(p.max_start_gib)])
        md.append(md_table(["method", "rows measured", "row peak GiB (mean)", "row peak GiB (max)",
                            "resident at row start GiB (max)"], prow))
        md.append("")
        md.append("Resident memory (RSS) of the benchmark process. Each row resets the kernel's high-water mark "
                  "before it starts, so a row's peak is its own (edit, evaluation and restore) and includes what was "
                  "already resident: the model's weights, libraries, and caches the editors keep between edits. Rows "
                  "from harness versions without this measurement are counted as not measured. One-time "
                  "preparation before a method's first row (statistics, a MEND hypernetwork) is in no row.\n")
        _csv_bytes(files, f"{files_dir_name}/memory.csv",
                   ["method", "rows", "rows_measured", "row_peak_gib_mean", "row_peak_gib_max", "row_start_gib_max"],
                   pcsv)

    # ---------------------------------------------------------------- plots
    if plots and scored:
        import tempfile

        from . import plots as P

        md.append("## Plots\n")
        with tempfile.TemporaryDirectory() as tmp:
            tmpd = Path(tmp)
            plot_metrics = [x for x in MKEB_METRICS if x in metrics]
            md.append("Source × target heatmaps (mean over records, %):\n")
            for m in methods:
                links = []
                for x in plot_metrics:
                    grid = matrix.get((m, x)) or {}
                    if not grid:
                        continue
                    name = f"heatmap_{_safe(m)}_{x}.png"
                    P.heatmap(tmpd / name, grid, list(grid), targets, f"{m}: {x} ({METRIC_TITLE[x]})")
                    files[f"{files_dir_name}/{name}"] = (tmpd / name).read_bytes()
                    links.append(f"[{x}]({files_dir_name}/{name})")
                if links:
                    md.append(f"- {m}: " + " · ".join(links))
            md.append("")
            md.append("Per-language bars comparing methods:\n")
            for s in sources:
                ms = [m for m in methods if any((matrix.get((m, x)) or {}).get(s) for x in plot_metrics)]
                for x in plot_metrics:
                    name = f"bars_{s}_{x}.png"
                    vals = {m: (matrix.get((m, x)) or {}).get(s, {}) for m in ms}
                    P.language_bars(tmpd / name, vals, ms, targets, f"edit language {s}: {x} ({METRIC_TITLE[x]})")
                    files[f"{files_dir_name}/{name}"] = (tmpd / name).read_bytes()
                    md.append(f"![{x}, edit language {s}]({files_dir_name}/{name})")
            md.append("")
        extra = ([", `memory.csv`"] if f"{files_dir_name}/memory.csv" in files else []) + (
            [", `memla_vs_best.csv`"] if vs_best_csv else []) + (
            [", `variants_vs_memla.csv`"] if variants_csv else [])
        md.append(f"CSV tables: `{files_dir_name}/summary.csv` (means, intervals, deltas), `matrix.csv` (source × "
                  f"target), `counts.csv`, `timing.csv`" + "".join(extra) + ".\n")
    text = "\n".join(md).rstrip("\n") + "\n"
    return Report(text, files)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _csv_bytes(files: dict[str, bytes], name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    files[name] = buf.getvalue().encode("utf-8")


def write_report(run_dirs: Sequence[Path], out: Optional[Path] = None, *, n_boot: int = 2000, seed: int = 0,
                 plots: bool = True, common_records: bool = False, shown: Optional[Invocation] = None) -> Path:
    """Build the report of ``run_dirs`` and write it (markdown + ``<stem>_files/``). Returns the markdown path.

    ``shown``: the command line to print as the Regenerate line (default: these arguments, paths
    below the current dir made relative); a regeneration check passes the recorded one.
    """
    if not run_dirs:
        raise ReportError("name at least one run dir")
    if shown is None:
        shown = Invocation.of(run_dirs, out, n_boot=n_boot, seed=seed, plots=plots, common_records=common_records)
    out = Path(out) if out else Path(run_dirs[0]) / "report.md"
    c = collect([Path(d) for d in run_dirs], common_records=common_records)
    rep = build(c, out, n_boot=n_boot, seed=seed, plots=plots, shown=shown)
    out.parent.mkdir(parents=True, exist_ok=True)
    files_dir = out.parent / (out.stem + "_files")
    if files_dir.is_dir():  # stale plots of methods no longer present must not linger
        for old in files_dir.iterdir():
            if old.is_file() and old.suffix in (".png", ".csv"):
                old.unlink()
    for rel, data in sorted(rep.files.items()):
        p = out.parent / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    out.write_text(rep.markdown, encoding="utf-8")
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``memla-mkeb-report`` (shared with :meth:`Invocation.from_argv`)."""
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="+", type=Path, help="run directories (shards/sittings are merged)")
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: report.md in the first run dir)")
    ap.add_argument("--bootstrap", type=int, default=DEFAULT_BOOT, help=f"bootstrap resamples (default {DEFAULT_BOOT})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"bootstrap seed (default {DEFAULT_SEED})")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    ap.add_argument("--common-records", action="store_true",
                    help="keep only the records that every method of a run dir has for an edit language (a run "
                         "growing in steps then reports the same records for every method)")
    return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point (``memla-mkeb-report``)."""
    args = parse_args(argv)
    try:
        out = write_report(args.run_dirs, args.out, n_boot=args.bootstrap, seed=args.seed, plots=not args.no_plots,
                           common_records=args.common_records)
    except MEMLAError as exc:
        print(f"memla-mkeb-report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"memla-mkeb-report: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
