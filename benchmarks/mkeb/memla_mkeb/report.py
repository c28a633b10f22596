"""``memla-mkeb-report RUN_DIR... [--out FILE]``: tables, intervals and plots from run dirs.

Reads every ``results*.jsonl`` of the given run dirs (a dir without one is searched
recursively, so a multirun or results folder can be passed whole), merges shards and
sittings (a key seen twice must carry the same scores, else it is an error), and writes:

* ``FILE`` (default ``report.md`` in the first run dir): markdown with the command that
  regenerates it, which run dir ran on which hardware, the Findings in words
  (:mod:`.findings`), per-method tables, deltas against the unedited model, MEMLA
  minus the best baseline, MEMLA's variants minus MEMLA (:mod:`.ablations`), the refined
  preset against MEMLA and the baselines with its own check of the paper's claim
  (:mod:`.preset_sections`), record
  counts, seeds, per-edit wall time and restore checks;
* ``<FILE stem>_files/``: CSV tables and PNG plots.

The output depends only on the input files and the options: no timestamps, fixed float
formatting, seeded bootstrap, sorted orders, paths shown as they were given on the command
line and links relative to the markdown file. Running it twice gives identical bytes.

The report is a list of sections (:data:`SECTIONS`, defined in :mod:`.sections`,
:mod:`.cost_sections` and, for the pictures, :mod:`.figures`) over one :class:`.ReportData`,
which holds every number they show.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from memla_plugin.errors import MEMLAError

from . import cost_sections, figures, sections
from . import grid_sections
from . import format_sections
from . import gen_sections
from . import seq_sections
from . import batch_sections
from . import composite_sections
from . import source_sections
from . import preset_sections
from .collect import Collected, ReportError, collect
from .invocation import DEFAULT_BOOT, DEFAULT_SEED, Invocation, parse_args
from .report_data import ReportData

#: The report, top to bottom: each section formats part of the data and adds its CSV/PNG files.
SECTIONS: tuple[Callable[[ReportData, dict[str, bytes]], list[str]], ...] = (
    sections.header,
    figures.at_a_glance,
    sections.runs,
    sections.findings,
    composite_sections.composite_and_locality,
    preset_sections.preset_section,
    grid_sections.method_status,
    grid_sections.operating_points,
    sections.counts,
    grid_sections.tuning_grid,
    format_sections.prompt_formats,
    sections.unsupported_metrics,
    sections.edit_languages,
    source_sections.edit_languages_compared,
    gen_sections.generation,
    seq_sections.retention,
    batch_sections.batch_size,
    seq_sections.perplexity,
    cost_sections.wall_time,
    cost_sections.memory,
    format_sections.in_context_costs,
    figures.plots,
)


@dataclass
class Report:
    markdown: str
    files: dict[str, bytes]


def build(c: Collected, out: Path, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED, plots: bool = True,
          shown: Optional[Invocation] = None) -> Report:
    """Compute every table (and the plot files) of the report; nothing is written here.

    ``shown``: the command line printed in the header (default: ``c.run_dirs`` and ``out``).
    """
    if shown is None:
        shown = Invocation.of(c.run_dirs, out, n_boot=n_boot, seed=seed, plots=plots, common_records=c.common_records,
                              first=c.first)
    data = ReportData.load(c, out, n_boot=n_boot, seed=seed, plots=plots, shown=shown)
    files: dict[str, bytes] = {}
    md = [line for section in SECTIONS for line in section(data, files)]
    return Report("\n".join(md).rstrip("\n") + "\n", files)


def write_report(run_dirs: Sequence[Path], out: Optional[Path] = None, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                 plots: bool = True, common_records: bool = False, first: Optional[int] = None,
                 shown: Optional[Invocation] = None) -> Path:
    """Build the report of ``run_dirs`` and write it (markdown + ``<stem>_files/``). Returns the markdown path.

    ``shown``: the command line to print as the Regenerate line (default: these arguments, paths
    below the current dir made relative); a regeneration check passes the recorded one.
    """
    if not run_dirs:
        raise ReportError("name at least one run dir")
    if shown is None:
        shown = Invocation.of(run_dirs, out, n_boot=n_boot, seed=seed, plots=plots, common_records=common_records,
                              first=first)
    out = Path(out) if out else Path(run_dirs[0]) / "report.md"
    c = collect([Path(d) for d in run_dirs], common_records=common_records, first=first)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point (``memla-mkeb-report``)."""
    args = parse_args(argv)
    try:
        out = write_report(args.run_dirs, args.out, n_boot=args.bootstrap, seed=args.seed, plots=not args.no_plots,
                           common_records=args.common_records, first=args.first)
    except MEMLAError as exc:
        print(f"memla-mkeb-report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"memla-mkeb-report: wrote {out}")
    return 0


__all__ = ["Invocation", "Report", "ReportError", "SECTIONS", "build", "collect", "main", "write_report"]


if __name__ == "__main__":
    sys.exit(main())
