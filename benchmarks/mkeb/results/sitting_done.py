"""Say whether a harness sitting would find nothing to do, without paying for the harness start.

The run scripts grow a series one record per sitting (``lanes.sh``), so resuming a long series walks
through many sittings whose rows are all written. The harness answers "nothing to do" for each, but
only after importing EasyEdit and building every method's hparams (about 25 s on this project's CPU
machines); this asks the same question of the harness's own plan and run dir in about 2 s.

    python benchmarks/mkeb/results/sitting_done.py OVERRIDES...   # the overrides of memla-mkeb

It prints ``nothing to do`` only when the plan's rows, sequences and batches are all in the run dir and
the run dir accepts the plan (the checks the harness makes before it says so); anything else (rows to
write, a refused resume, a bad setting, an import error) prints nothing of the kind, and the caller runs
the sitting, whose harness then reports it as it always did. Uses only the planning and store functions
of ``memla_mkeb``, so it answers for whichever harness checkout the environment imports (a pinned series
runs its own).
"""
from __future__ import annotations

import sys
from typing import Sequence

DONE = "nothing to do"


def pending_count(overrides: Sequence[str]) -> int:
    """Rows, sequences and batches the sitting ``memla-mkeb OVERRIDES`` would still write."""
    from memla_mkeb import store
    from memla_mkeb.app import compose_config
    from memla_mkeb.planning import check_resume, plan_run

    plan = plan_run(compose_config(overrides))
    done = store.done_keys(plan.run_dir)
    done_seq = {**store.done_sequences(plan.run_dir), **store.done_sequences(plan.run_dir, store.BATCHES_GLOB)}
    check_resume(plan, {**done, **done_seq}, store.load_cache(plan.run_dir))
    return len(plan.pending(done)) + len(plan.pending_sequences(done_seq)) + len(plan.pending_batches(done_seq))


def main(argv: Sequence[str]) -> int:
    try:
        left = pending_count(argv)
    except Exception as exc:  # the sitting runs and the harness reports it in full
        print(f"sitting_done: cannot tell ({type(exc).__name__}); the sitting runs", file=sys.stderr)
        return 1
    print(DONE if left == 0 else f"{left} to do")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
