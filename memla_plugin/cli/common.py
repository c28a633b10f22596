"""What every console command shares: bad input ends in a one-line error, never a traceback."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from ..errors import MEMLAError


class CLIUsageError(MEMLAError, ValueError):
    """A command-line value is unusable (an output path that cannot be written, a bad limit)."""


def check_output_file(path: str, flag: str) -> None:
    """Refuse an output file that could not be written, before any work whose result it should hold."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CLIUsageError(f"{flag} {path}: is a directory; give a file name")
    if not folder.is_dir():
        raise CLIUsageError(f"{flag} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CLIUsageError(f"{flag} {path}: not writable")


def run_command(prog: str, body: Callable[[], object], *, error_status: int = 1, interrupted: str = "interrupted") -> int:
    """Run ``body`` and turn the project's errors into ``<prog>: error: ...`` on stderr.

    The first line of the message carries the prefix, any further lines (a list of problems)
    follow as they are. A file-system error names the file. Returns the exit status: 0,
    ``error_status`` on an error, 130 on Ctrl-C.
    """
    try:
        body()
    except MEMLAError as exc:
        first, *rest = str(exc).splitlines() or [""]
        print(f"{prog}: error: {first}", file=sys.stderr)
        for line in rest:
            print(line, file=sys.stderr)
        return error_status
    except OSError as exc:
        print(f"{prog}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return error_status
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    return 0
