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


def _needs_stats(alg: str, hp) -> bool:
    return alg == "MEMIT" or (alg == "ROME" and bool(getattr(hp, "mom2_adjustment", False)))


def _stats_key(hp) -> tuple:
    """Methods whose statistics files would coincide share one pass over the corpus."""
    return (hp.rewrite_module_tmp, hp.mom2_dataset, hp.mom2_dtype, int(hp.mom2_n_samples), str(hp.stats_dir))


def prepare_all(methods: Sequence[str], hparams_dir: Path, model_name: str = "default") -> dict[str, float]:
    """Load the model once and make each method runnable offline; seconds per method.

    Statistics first: the layers of every ROME/MEMIT hparams with the same corpus settings
    are collected in one pass (ROME's layer 5 and MEMIT's 4-8 of the default model: one pass,
    not two). Then :func:`prepare_baseline` per method, which finds them cached.
    """
    from ..models import load_model
    from .baselines import prepare_baseline
    from .hparams_map import load_hparams
    from .stats import ensure_mom2_stats

    unknown = [alg for alg in methods if alg not in DEFAULT_FILES]
    if unknown:
        raise MEMLAError(f"--methods: {', '.join(unknown)} unknown or needing no preparation; "
                         f"choose from {', '.join(DEFAULT_FILES)}")
    hparams = {alg: load_hparams(alg, hparams_dir / DEFAULT_FILES[alg]) for alg in methods}
    model, tok = load_model(model_name)
    groups: dict[tuple, list] = {}
    for alg, hp in hparams.items():
        if _needs_stats(alg, hp):
            groups.setdefault(_stats_key(hp), []).append(hp)
    for hps in groups.values():
        layers = sorted({int(l) for hp in hps for l in hp.layers})
        ensure_mom2_stats(model, tok, hps[0], layers=layers)
    seconds = {}
    for alg, hp in hparams.items():
        t0 = time.perf_counter()
        prepare_baseline(alg, model, tok, hp)
        seconds[alg] = time.perf_counter() - t0
        print(f"[memla-setup] {alg}: ready ({seconds[alg]:.1f} s) from {hparams_dir / DEFAULT_FILES[alg]}", flush=True)
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
