#!/usr/bin/env bash
# The dev tuning grid (benchmarks/mkeb/README.md, "Tuning grid"): every point of
# memla_mkeb/conf/grid/default.yaml and the unedited model on the first N shipped dev records, source en,
# under the harness's chosen prompt format (preamble; benchmarks/mkeb/README.md, "Prompt format").
# The selection rule reads ES, PS and NS_cf only, so the generation-based metrics are left out here
# (eval.gen_max_new_tokens=0); each method's chosen point is then run with them on all dev records by
# ../dev_chosen/run.sh. Records are added one at a time, so every sitting ends with every point on the
# same records. Resumable: run the same command again; rows already written are skipped.
#
#   benchmarks/mkeb/results/dev_grid/run.sh [N]          # default N = 10
#   LANES=2 benchmarks/mkeb/results/dev_grid/run.sh 10   # two processes, one torch thread each (strided shards)
#   LANES=2 LANE=1 benchmarks/mkeb/results/dev_grid/run.sh 10   # only the second of them
#   ONLY=memla,lora benchmarks/mkeb/results/dev_grid/run.sh 3   # only these grid methods (and unedited)
#   benchmarks/mkeb/results/dev_grid/run.sh mend         # unedited + MEND on the 10 dev records (unsharded rows)
#   benchmarks/mkeb/results/dev_grid/run.sh status       # MEND's verdict -> method_status.json
#   benchmarks/mkeb/results/dev_grid/run.sh select       # each method's choice -> selection.json
#   benchmarks/mkeb/results/dev_grid/run.sh report       # report.md of this run dir
#
# On a 2-core machine two one-thread lanes get more done than one process with two threads (small
# matrix products do not keep two threads busy). Lane i runs shard i of LANES in strided mode, i.e.
# records i, i+LANES, ...; its rows go to results.shardIofLANES.jsonl; reports and selection read all.
#
# The hparams files are the copies in ./hparams (as they were when the grid began): a run dir refuses rows
# made with another hparams file content, and the repository's files gain comments (the grid and its choice).
# DEV_GRID_DIR puts the rows elsewhere (e.g. the absolute path of this folder when the code runs from
# another checkout of a fixed commit). ROME/MEMIT read their cached statistics
# (python -m memla_plugin.easyedit.prepare computes them; a missing one is computed when the method first runs).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
PY="${MEMLA_PYTHON:-$BIN/python}"
R="${DEV_GRID_DIR:-benchmarks/mkeb/results/dev_grid}"
case "${1:-}" in
    select) exec "$PY" -m memla_mkeb.select "$R" ;;
    status) exec "$PY" -m memla_mkeb.method_status "$R" --method mend ;;
    report) exec "$PY" -m memla_mkeb.report "$R" --out "$R/report.md" ;;
esac
N="${1:-10}"
[ "$N" = mend ] && N=10
LANES="${LANES:-1}"
POINTS=$("$PY" -c "
from memla_mkeb.grid import grid_methods, load_grid
only = [m for m in '${ONLY:-}'.split(',') if m] or None
print(','.join(grid_methods(load_grid(), only)))")
METHODS="unedited,$POINTS"
COMMON=(data=dev "source_langs=[en]" "methods=[$METHODS]" "run_dir=$R" "run.neuron_dir=$R/neurons"
        "hparams_dir=$R/hparams" prompt_format=preamble eval.gen_max_new_tokens=0)

source benchmarks/mkeb/results/lanes.sh

if [ "${1:-}" = mend ]; then  # MEND has no grid; its rows are the evidence `status` reads
    LANES=1
    COMMON=(data=dev "source_langs=[en]" "methods=[unedited,mend]" "run_dir=$R" "hparams_dir=$R/hparams"
            prompt_format=preamble eval.gen_max_new_tokens=0)
    lane 0
else
    run_lanes
fi
