"""docs/RELIABILITY.md is written from what the reliability suite observes, byte for byte.

The cases, trials and their outcomes come from ``tests/reliability_results.py`` (the same runs
``tests/test_reliability_inputs.py`` and ``tests/test_reliability_faults.py`` assert on). Only
what the suite checks goes into the file (no timings, no counts that depend on timing), so it
is the same on every machine where the promises hold. ``MEMLA_UPDATE_DOCS=1`` rewrites it.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import reliability_results
from conftest_bench import bench_model_dir  # noqa: F401
from reliability_faults import KILL_KINDS, TRIAL_OVERRIDES
from reliability_matrix import CASES, RUN_DIR_CASES, Case, Outcome
from test_reliability_faults import caches, report  # noqa: F401
from test_reliability_inputs import outcomes  # noqa: F401

DOC = Path(__file__).resolve().parents[1] / "docs" / "RELIABILITY.md"

HEADER = """# Reliability: bad inputs and faults

Written by `tests/test_reliability_doc.py` from the outcomes of the reliability suite
(`tests/test_reliability_inputs.py`, `tests/test_reliability_faults.py`; the cases are declared in
`tests/reliability_matrix.py`, `tests/reliability_faults.py` and `tests/reliability_caches.py`). The
test fails when this file differs from what the suite observes; `MEMLA_UPDATE_DOCS=1 python -m pytest
tests/test_reliability_doc.py` rewrites it. Every entry below is checked on every test run (CI included).

## What is promised

- A bad setting, data file, hparams file or override, damaged run dir or command-line value given to
  `memla-mkeb`, `memla-edit` or `memla-mkeb-convert` ends with exactly one line `<command>: error: ...` on
  stderr, naming the setting, the file (with the byte offset of a decoding error, the line of a bad
  results line) or the catalog entry (`catalog.<method>: ...`); no traceback; exit status 2 (`memla-edit`: 1).
- A refused input writes nothing: no run dir is created, and an existing run dir's rows, `plan.json`,
  `config.yaml` and `env.json` keep their bytes.
- It is refused before any model is loaded: every method's hparams (its file, then the catalog's overrides)
  are built and validated first, and a run dir's rows are read and checked before the load.
- One lock per run dir (and shard) is held from the first read of its rows to the last row written: a
  second run on it is refused at once, so no row is written twice.
- `kill -9` at any point loses no finished row and writes none twice; rerunning the same command
  cuts a partial last line and finishes with the rows an uninterrupted run writes.
- A converted model cache whose bytes changed is refused before any score is computed: the manifest
  records each parameter's sha256 when the cache is written, and the harness compares them with the
  digests its restore check takes at load (`run.restore_check=sha256`, the default; no second read of
  the weights); a cache written before digests were recorded is re-hashed in full once and its digests
  are recorded. Every load (`memla-edit` and the library's `load_model` too) also refuses NaN or infinite
  logits on a test prompt. Cached neurons outside the model are a cache miss (logged with their
  file) and are replaced. MEND checkpoints load only with `torch.load(weights_only=True)`, and a
  cached one is reused only when its sha256 is the one recorded in its provenance.
"""


def _shown(case: Case, out: Outcome) -> str:
    """The error line up to the end of the part the suite checks (longer tails, e.g. lists of
    known names that grow with the catalog, are cut)."""
    msg = out.message
    at = msg.find(case.expect)
    end = at + len(case.expect) if at >= 0 else len(msg)
    text = msg[:end] + (" …" if end < len(msg) else "")
    return text.replace("|", "\\|").replace("`", "'")


def _matrix_section(outs: dict[str, Outcome]) -> list[str]:
    cases = CASES + RUN_DIR_CASES
    good = sum(1 for c in cases if _as_promised(c, outs[c.name]))
    lines = [f"## Bad inputs: {len(cases)} cases, {good} as promised", "",
             "| case | command | tried | status | error line (up to the checked part) | written | model loaded |",
             "|---|---|---|---|---|---|---|"]
    for c in cases:
        out = outs[c.name]
        written = "nothing" if not out.wrote and not out.made_run_dir else ", ".join(out.wrote) or "run dir"
        lines.append(f"| {c.name} | `{c.entry}` | {c.tried} | {out.status} | `{_shown(c, out)}` | {written} | "
                     f"{'yes' if out.model_loaded else 'no'} |")
    return lines + [""]


def _as_promised(case: Case, out: Outcome) -> bool:
    return (not out.error and out.status == case.status and out.lines == 1 and not out.traceback
            and case.expect in out.message and not out.wrote and not out.made_run_dir and not out.model_loaded)


def _fault_section(rep: Any) -> list[str]:
    trials = sum(rep.kills.values())
    lines = ["## Faults", "",
             f"### kill -9: {trials} trials (seeded, seed {reliability_results.KILL_SEED})", "",
             f"Each trial runs `{' '.join(TRIAL_OVERRIDES)}` (source en, evaluated in en/zh/fr: 6 rows) on a tiny "
             f"Qwen2 in a forked process that is killed with SIGKILL, then reruns it and compares every row with "
             f"an uninterrupted run. A kill \"as an edit begins\" comes from the runner's before-edit hook, "
             f"\"mid-way through writing a row\" after half of a results line has been written and fsync'ed.", "",
             "| where the kill came | trials |", "|---|---|"]
    lines += [f"| {kind} | {rep.kills[kind]} |" for kind in KILL_KINDS]
    lines += ["", f"Rows expected after the reruns: {rep.rows_expected} (kill and race trials); "
              f"lost: {rep.lost}; written twice: {rep.duplicated}; scores differing from the uninterrupted run: "
              f"{rep.differing}.", "",
              f"### Two runs on one run dir: {reliability_results.RACE_TRIALS} trials", "",
              f"The second run starts 0-0.5 s after the first (half of them with another seed); whichever takes "
              f"the run dir's lock first runs, the other is refused or finds every row done. "
              f"Runs: {sum(rep.races.values())}; rows written twice: {rep.race_duplicates}; run dirs whose plan or "
              f"sittings a refused run changed: {rep.race_meta_changed}; unexplained outcomes: {len(rep.problems)}.",
              ""]
    return lines


def _cache_section(found: list[Any]) -> list[str]:
    held = sum(1 for c in found if c.held)
    lines = [f"### Damaged caches: {len(found)} cases, {held} as promised", "",
             "| case | tried | what happens |", "|---|---|---|"]
    for c in found:
        result = c.result.replace("|", "\\|").replace("`", "'")
        lines.append(f"| {c.name} | {c.tried} | `{result}` |" if c.held else f"| {c.name} | {c.tried} | NOT AS "
                     f"PROMISED: {result} |")
    return lines + [""]


def render(outs: dict[str, Outcome], rep: Any, found: list[Any]) -> str:
    return "\n".join([HEADER, *_matrix_section(outs), *_fault_section(rep), *_cache_section(found)]).rstrip() + "\n"


def test_reliability_doc_is_what_the_suite_observes(outcomes, report, caches):  # noqa: F811
    text = render(outcomes, report, caches)
    print("reliability suite parts (s):", {k: round(v, 1) for k, v in reliability_results.TIMES.items()})
    if os.environ.get("MEMLA_UPDATE_DOCS") == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file(), f"{DOC} missing; write it with MEMLA_UPDATE_DOCS=1"
    old = DOC.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), "committed", "observed"))
    assert old == text, f"docs/RELIABILITY.md differs from the suite's outcomes:\n{diff[:4000]}"
    assert "NOT AS PROMISED" not in text
