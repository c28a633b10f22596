"""The ``memla-mkeb-report`` command line, kept as written so a report can print how to regenerate it."""
from __future__ import annotations

import argparse
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .collect import ReportError

PROG = "memla-mkeb-report"
DESCRIPTION = "``memla-mkeb-report RUN_DIR... [--out FILE]``: tables, intervals and plots from run dirs."
DEFAULT_BOOT = 2000
DEFAULT_SEED = 0


def shown_path(p: Path | str) -> str:
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
    first: Optional[int] = None

    @classmethod
    def of(cls, run_dirs: Sequence[Path | str], out: Optional[Path | str] = None, *, n_boot: int = DEFAULT_BOOT,
           seed: int = DEFAULT_SEED, plots: bool = True, common_records: bool = False,
           first: Optional[int] = None) -> "Invocation":
        """From real paths (absolute ones below the current dir are shown relative to it)."""
        return cls(tuple(shown_path(d) for d in run_dirs), None if out is None else shown_path(out),
                   int(n_boot), int(seed), bool(plots), bool(common_records), None if first is None else int(first))

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
        if self.first is not None:
            a += ["--first", str(self.first)]
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
                   a.bootstrap, a.seed, not a.no_plots, a.common_records, a.first)

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


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``memla-mkeb-report`` (shared with :meth:`Invocation.from_argv`)."""
    ap = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    ap.add_argument("run_dirs", nargs="+", type=Path, help="run directories (shards/sittings are merged)")
    ap.add_argument("--out", type=Path, default=None, help="markdown file (default: report.md in the first run dir)")
    ap.add_argument("--bootstrap", type=int, default=DEFAULT_BOOT, help=f"bootstrap resamples (default {DEFAULT_BOOT})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"bootstrap seed (default {DEFAULT_SEED})")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    ap.add_argument("--common-records", action="store_true",
                    help="keep only the records that every method of a run dir has for an edit language (a run "
                         "growing in steps then reports the same records for every method)")
    ap.add_argument("--first", type=int, default=None, metavar="N",
                    help="only the first N records of each run's selection (a comparison made on the first N "
                         "records stays reproducible after its run dirs have grown)")
    return ap.parse_args(argv)


__all__ = ["DEFAULT_BOOT", "DEFAULT_SEED", "Invocation", "PROG", "parse_args", "shown_path"]
