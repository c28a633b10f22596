"""Prepare the host's baselines for a model ahead of time (set-up step, not a benchmark step).

EasyEdit downloads ROME/MEMIT's second-moment statistics and MEND's trained hypernetworks
from its servers. Offline, they are computed here once per model and cached (see
:mod:`.stats` and :mod:`.mend`), so a benchmark run starts editing at once:

    python -m memla_plugin.easyedit.prepare                       # ROME + MEMIT statistics, default model
    python -m memla_plugin.easyedit.prepare --methods ROME,MEMIT,MEND

``memla-setup`` runs the first form (skip it with ``--no-baseline-stats``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import MEMLAError

#: method -> hparams file (relative to the hparams directory) for the default model
DEFAULT_FILES = {
    "ROME": "ROME/qwen2.5-0.5b.yaml",
    "MEMIT": "MEMIT/qwen2.5-0.5b.yaml",
    "MEND": "MEND/qwen2.5-0.5b.yaml",
}


def prepare_all(methods: Sequence[str], hparams_dir: Path, model_name: str = "default") -> dict[str, float]:
    """Load the model once and run :func:`prepare_baseline` for each method; seconds per method."""
    from ..models import load_model
    from .baselines import prepare_baseline
    from .hparams_map import load_hparams

    model, tok = load_model(model_name)
    seconds = {}
    for alg in methods:
        if alg not in DEFAULT_FILES:
            raise MEMLAError(f"--methods: {alg!r} needs no preparation or is unknown; choose from {', '.join(DEFAULT_FILES)}")
        path = hparams_dir / DEFAULT_FILES[alg]
        hp = load_hparams(alg, path)
        t0 = time.perf_counter()
        prepare_baseline(alg, model, tok, hp)
        seconds[alg] = time.perf_counter() - t0
        print(f"[memla-setup] {alg}: ready ({seconds[alg]:.1f} s) from {path}", flush=True)
    return seconds


def default_hparams_dir() -> Path:
    """The shipped hparams/ folder: the source checkout's, ./hparams, or the installed copy under share/."""
    from ..cli.edit import find_hparams_file

    found = find_hparams_file()
    if found is None:
        raise MEMLAError("cannot find the shipped hparams/ folder; pass --hparams-dir")
    return found.parents[1]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memla_plugin.easyedit.prepare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="ROME,MEMIT", help="comma-separated: ROME, MEMIT, MEND (default ROME,MEMIT)")
    ap.add_argument("--hparams-dir", type=Path, default=None, help="folder holding <ALG>/qwen2.5-0.5b.yaml")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        prepare_all(methods, args.hparams_dir or default_hparams_dir())
    except MEMLAError as exc:
        print(f"memla-setup: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
