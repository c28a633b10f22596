"""``memla-mkeb-convert``: turn BMIKE-53 or a real MKEB file into the project's MKEB JSON (see :mod:`memla_plugin.mkeb.convert`)."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from .common import run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; bad input gives a one-line error and exit status 2."""
    from ..mkeb.convert import build_parser

    args = build_parser().parse_args(argv)
    return run_command("memla-mkeb-convert", lambda: args.func(args), error_status=2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
