#!/usr/bin/env bash
# The dev tuning grid (benchmarks/mkeb/README.md, "Tuning grid"): every point of
# memla_mkeb/conf/grid/default.yaml and the unedited model on the first N shipped dev records, source en,
# prompt_format=bare (the rows began before the harness default became preamble; a run under another
# format needs its own run dir); MEND (no grid) gets its own dev run in ./mend, whose rows are the
# evidence `python -m memla_mkeb.method_status` reads. Records are added one at a time, so every sitting ends with
# every method on the same records. Resumable: run the same command again; rows already written are
# skipped, nothing is redone.
#
#   benchmarks/mkeb/results/dev_grid/run.sh [N]          # default N = 10
#   ONLY=memla,lora benchmarks/mkeb/results/dev_grid/run.sh 3   # only these grid methods (and unedited)
#   benchmarks/mkeb/results/dev_grid/run.sh select       # each method's choice -> selection.json
#   benchmarks/mkeb/results/dev_grid/run.sh mend         # unedited + MEND on the first 5, then 10 dev records -> mend/
#   benchmarks/mkeb/results/dev_grid/run.sh status       # MEND's verdict -> mend/method_status.json
#   benchmarks/mkeb/results/dev_grid/run.sh report       # report.md of this run dir and mend/
#
# The hparams files are the copies in ./hparams (as they were when the grid began): a run dir refuses rows
# made with another hparams file content, and the repository's files gain comments (the grid and its choice).
# DEV_GRID_DIR puts the rows elsewhere (e.g. the absolute path of this folder when the code runs from
# another checkout of a fixed commit). ROME/MEMIT read their cached statistics and MEND its trained
# hypernetwork; a missing one is computed when the method first runs (python -m memla_plugin.easyedit.prepare).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
PY="${MEMLA_PYTHON:-$BIN/python}"
R="${DEV_GRID_DIR:-benchmarks/mkeb/results/dev_grid}"
case "${1:-}" in
    select) exec "$PY" -m memla_mkeb.select "$R" ;;
    status) exec "$PY" -m memla_mkeb.method_status "$R/mend" --method mend ;;
    report) exec "$PY" -m memla_mkeb.report "$R" "$R/mend" --out "$R/report.md" ;;
    mend)   for n in 5 10; do  # two sittings: a verdict needs 5 paired records; each sitting loads the model once
                "$PY" -m memla_mkeb.app data=dev "data.limit=$n" "source_langs=[en]" "methods=[unedited,mend]" \
                    "run_dir=$R/mend" "hparams_dir=$R/hparams" prompt_format=bare
            done
            exit 0 ;;
esac
N="${1:-10}"
POINTS=$("$PY" -c "
import sys
from memla_mkeb.grid import grid_methods, load_grid
only = [m for m in '${ONLY:-}'.split(',') if m] or None
print(','.join(grid_methods(load_grid(), only)))")
METHODS="unedited,$POINTS"   # MEND's dev rows: `run.sh mend` (its own run dir, so both can run at once)
for n in $(seq 1 "$N"); do
    "$PY" -m memla_mkeb.app data=dev "data.limit=$n" "source_langs=[en]" "methods=[$METHODS]" \
        "run_dir=$R" "run.neuron_dir=$R/neurons" "hparams_dir=$R/hparams" prompt_format=bare
done
