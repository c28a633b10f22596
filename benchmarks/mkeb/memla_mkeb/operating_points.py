"""Each method's operating point in a test series, with the dev evidence that chose it.

A test series pins its hparams files before its first row (``protocol2/run.sh pin``). This module
writes, next to them, ``operating_points.json``: for every catalog method of the series, the pinned
file, its content hash (the one the run plans record, :mod:`.planning`) and what chose it: the tuning
grid's knob, value and dev composite (``dev_grid/selection.json``), or for a method without a grid the
evidence named on the command line (MEND's "functional" test, the refined preset's keep rule). A pinned
value that differs from the grid's choice is refused here, before any row exists.

The report (section "Operating points") reads the file from a run dir or its parent and checks every
method's hash against the plans of the rows it shows, so a page cites the selection of the very files
its rows were edited with.

    python -m memla_mkeb.operating_points --selection benchmarks/mkeb/results/dev_grid/selection.json \\
        --hparams-dir benchmarks/mkeb/results/protocol2/hparams --out benchmarks/mkeb/results/protocol2/operating_points.json \\
        --also "mend=benchmarks/mkeb/results/dev_grid/method_status.json" ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from .settings import catalog_alg_name, catalog_hparams_path, file_sha256

FILE_NAME = "operating_points.json"
CATALOG = Path(__file__).resolve().parent / "conf" / "catalog" / "default.yaml"


class OperatingPointError(ValueError):
    """A pinned hparams file does not hold the value the dev selection chose (or cannot be read)."""


def hparams_file(method: str, catalog: Mapping[str, Any], hparams_dir: Path, model_key: str) -> Path:
    """The hparams file the harness loads for ``method`` (the catalog's template filled in as it does)."""
    entry = catalog.get(method)
    if not entry or str(entry.get("kind", "easyedit")) == "unedited":
        raise OperatingPointError(f"method {method!r} is not an editing method of the catalog {CATALOG}")
    return Path(catalog_hparams_path(entry, catalog_alg_name(method, entry), hparams_dir, model_key))


def _entry(method: str, catalog: Mapping[str, Any], hparams_dir: Path, model_key: str) -> tuple[Path, dict[str, Any]]:
    path = hparams_file(method, catalog, hparams_dir, model_key)
    if not path.is_file():
        raise OperatingPointError(f"{method}: hparams file {path} is missing (pin the series first)")
    overrides = catalog[method].get("overrides") or {}
    return path, {"hparams": path.as_posix(), "hparams_sha": file_sha256(path)[:16], "overrides": dict(overrides)}


def build(selection: Mapping[str, Any], hparams_dir: Path, *, selection_path: str,
          also: Optional[Mapping[str, str]] = None,
          model_key: str = "qwen2.5-0.5b", catalog: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The operating-points document of the series whose pinned files are in ``hparams_dir``."""
    catalog = catalog if catalog is not None else yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    methods: dict[str, Any] = {}
    for method, sel in sorted(selection.get("methods", {}).items()):
        path, entry = _entry(method, catalog, hparams_dir, model_key)
        knob, chosen = sel["knob"], sel.get("chosen") or {}
        if not chosen:
            raise OperatingPointError(f"{method}: the selection has no choice yet ({selection_path})")
        held = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(knob)
        if held is None or float(held) != float(chosen["value"]):
            raise OperatingPointError(f"{method}: {path} holds {knob}={held!r}, but the dev selection "
                                      f"({selection_path}) chose {chosen['value']!r}")
        points = [{"value": p["value"], "composite": p.get("composite")} for p in sel.get("points", [])]
        picked = next((p for p in sel.get("points", []) if p["name"] == chosen["name"]), {})
        methods[method] = {**entry, "knob": knob, "value": chosen["value"], "chosen_by": selection_path,
                           "dev_records": len(sel.get("records", [])), "dev_composite": picked.get("composite"),
                           "points": points}
    for method, evidence in sorted((also or {}).items()):
        if method in methods:
            raise OperatingPointError(f"{method}: chosen by the grid already; --also is for methods without one")
        methods[method] = {**_entry(method, catalog, hparams_dir, model_key)[1], "chosen_by": evidence}
    return {"selection": selection_path, "rule": selection.get("rule"), "source": selection.get("source"),
            "view": selection.get("view"), "methods": methods}


def load(run_dir: Path) -> Optional[tuple[bool, dict[str, Any]]]:
    """(found in the parent, the document) for a run dir's operating points (in it, or in its parent: the
    series dir), or None."""
    for up, d in ((False, run_dir), (True, run_dir.parent)):
        f = d / FILE_NAME
        if f.is_file():
            return up, json.loads(f.read_text(encoding="utf-8"))
    return None


def _also(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        method, sep, evidence = item.partition("=")
        if not sep or not method or not evidence:
            raise OperatingPointError(f"--also {item!r}: expected METHOD=EVIDENCE (a file or a sentence)")
        out[method] = evidence
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selection", required=True, help="the tuning grid's selection.json (memla-mkeb-select)")
    ap.add_argument("--hparams-dir", required=True, help="the series' pinned hparams folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="qwen2.5-0.5b", help="model.hparams_name of the series")
    ap.add_argument("--also", action="append", default=[], metavar="METHOD=EVIDENCE",
                    help="a method without a grid and what chose its settings (repeatable)")
    args = ap.parse_args(argv)
    try:
        sel_path = Path(args.selection)
        doc = build(json.loads(sel_path.read_text(encoding="utf-8")), Path(args.hparams_dir),
                    selection_path=sel_path.as_posix(), also=_also(args.also), model_key=args.model)
    except (OperatingPointError, OSError, KeyError, json.JSONDecodeError) as e:
        print(f"memla_mkeb.operating_points: {e}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"memla_mkeb.operating_points: {len(doc['methods'])} methods -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
