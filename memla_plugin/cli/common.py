"""What every console command shares: bad input ends in a one-line error, never a traceback."""
from __future__ import annotations

import sys
from typing import Callable

from ..errors import MEMLAError


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
