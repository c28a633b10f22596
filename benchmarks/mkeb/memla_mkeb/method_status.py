"""Whether a host editor works on the model at all, decided on dev rows and kept as evidence.

An editor whose edits do not even raise P(target_new) above P(target_true) on the edit prompt
more often than the unedited model already does is not editing: comparing MEMLA with it, or
naming it the best baseline, says nothing about MEMLA. The test, fixed before the dev rows
were read: a method is **functional** when the mean ES edit→edit of its successful edits is
above the unedited model's on the same dev records (paired by record, source ``en``);
otherwise it is marked "not functional on this model". With fewer than :data:`MIN_RECORDS`
paired records there is no verdict (``functional: null``): one or two 0/1 outcomes decide nothing.

``python -m memla_mkeb.method_status RUN_DIR [--method mend]`` writes the verdict with its
evidence (both means, the paired difference with its bootstrap interval, the records, and for
MEND the training budget from the checkpoint's provenance) to ``RUN_DIR/method_status.json``.
The report reads that file from the run dirs it is given (:func:`read_status`): such methods
are named in a section of their own and left out of the best baseline.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from memla_plugin.errors import MEMLAError

from .stats import Estimate, bootstrap, paired, record_value

STATUS_FILE = "method_status.json"
#: The report's method kind for a host editor marked not functional (never counted as a baseline).
NOT_FUNCTIONAL = "easyedit (not functional)"
MIN_RECORDS = 5
TEST = ("functional when the mean ES edit→edit of its successful edits is above the unedited model's "
        f"on the same records (paired by record; no verdict on fewer than {MIN_RECORDS} records)")


def _es_e2e(rows: Iterable[Mapping[str, Any]], method: str, source: str) -> dict[str, float]:
    out = {}
    for r in rows:
        if r.get("method") == method and r.get("source") == source and r.get("status", "ok") == "ok" and r.get("scores"):
            v = record_value(r["scores"], source, "ES", "e2e")
            if v is not None:
                out[str(r["record_id"])] = v
    return out


def check_functional(rows: Sequence[Mapping[str, Any]], method: str, *, source: str = "en", seed: int = 0,
                     n_boot: int = 2000) -> dict[str, Any]:
    """The verdict for ``method`` against the ``unedited`` rows, with the numbers it rests on."""
    mine, ref = _es_e2e(rows, method, source), _es_e2e(rows, "unedited", source)
    common = {k: v for k, v in mine.items() if k in ref}
    if not common:
        raise MEMLAError(f"method_status: no records with both {method!r} and 'unedited' rows for source {source}")
    ref_common = {k: ref[k] for k in common}

    def est(vals: Iterable[float], label: str) -> Estimate:
        return bootstrap(list(vals), label=f"status|{method}|{source}|{label}", seed=seed, n_boot=n_boot)

    diff = est(paired(common, ref_common), "diff")
    return {
        "method": method, "source": source, "metric": "ES", "view": "e2e", "test": TEST,
        "functional": None if len(common) < MIN_RECORDS else bool(diff.mean is not None and diff.mean > 0),
        "records": sorted(common, key=lambda x: (len(x), x)),
        "attempted": sum(1 for r in rows if r.get("method") == method and r.get("source") == source),
        "es_e2e": asdict(est(common.values(), "method")),
        "unedited_es_e2e": asdict(est(ref_common.values(), "unedited")),
        "difference": asdict(diff),
    }


def mend_training_record(provenance: Optional[Path] = None) -> Optional[dict[str, Any]]:
    """The budget and final losses of the MEND checkpoint (its provenance.json; newest in the cache by default)."""
    if provenance is None:
        from memla_plugin.easyedit.paths import mend_dir

        found = sorted(Path(mend_dir()).glob("*/provenance.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            return None
        provenance = found[-1]
    prov = json.loads(Path(provenance).read_text(encoding="utf-8"))
    keep = ("steps", "training_overrides", "budget", "final_train", "final_validation", "train_items", "corpus",
            "created")
    return {k: prov.get(k) for k in keep}


def write_status(run_dir: Path, methods: Sequence[str], *, source: str = "en", seed: int = 0, n_boot: int = 2000,
                 mend_provenance: Optional[Path] = None) -> dict[str, Any]:
    """Check ``methods`` on the rows of ``run_dir`` and write ``run_dir/method_status.json``."""
    from .collect import collect

    rows = list(collect([run_dir]).rows.values())
    status = {m: check_functional(rows, m, source=source, seed=seed, n_boot=n_boot) for m in methods}
    if "mend" in status:
        status["mend"]["training"] = mend_training_record(mend_provenance)
    payload = {"test": TEST, "methods": status}
    (run_dir / STATUS_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return payload


def read_status(run_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Every method verdict found in the given run dirs (``method_status.json``), by method."""
    out: dict[str, dict[str, Any]] = {}
    for d in run_dirs:
        f = Path(d) / STATUS_FILE
        if f.is_file():
            for m, v in (json.loads(f.read_text(encoding="utf-8")).get("methods") or {}).items():
                out[m] = {**v, "run_dir": str(d)}
    return out


def not_functional(run_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """The methods marked not functional in the given run dirs, with their evidence."""
    return {m: v for m, v in read_status(run_dirs).items() if v.get("functional") is False}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m memla_mkeb.method_status RUN_DIR [--method mend ...]``."""
    ap = argparse.ArgumentParser(prog="python -m memla_mkeb.method_status", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--method", action="append", default=None, help="method to check (default: mend)")
    ap.add_argument("--source", default="en")
    ap.add_argument("--mend-provenance", type=Path, default=None, help="MEND checkpoint provenance.json")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        payload = write_status(args.run_dir, args.method or ["mend"], source=args.source, seed=args.seed,
                               n_boot=args.bootstrap, mend_provenance=args.mend_provenance)
    except MEMLAError as exc:
        print(f"method_status: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for m, v in payload["methods"].items():
        verdict = {True: "functional", False: "NOT functional on this model", None: "no verdict yet"}[v["functional"]]
        print(f"{m}: {verdict}: ES e2e "
              f"{100 * v['es_e2e']['mean']:.1f} vs unedited {100 * v['unedited_es_e2e']['mean']:.1f} "
              f"on {len(v['records'])} records")
    print(f"wrote {args.run_dir / STATUS_FILE}")
    return 0


__all__ = ["MIN_RECORDS", "NOT_FUNCTIONAL", "STATUS_FILE", "TEST", "check_functional", "main", "mend_training_record", "not_functional",
           "read_status", "write_status"]


if __name__ == "__main__":
    sys.exit(main())
