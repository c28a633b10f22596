#!/usr/bin/env bash
# Every method at its chosen operating point on the shipped dev records (source en, prompt format
# preamble, generation-based metrics on): the dev-split run of the fair protocol
# (benchmarks/mkeb/README.md, "Tuning grid"). The points were chosen by ../dev_grid/run.sh select and
# written into the repository's hparams files; `pin` copies those files here once, so later comment
# edits there do not change this run's identity. MEND has no grid (its verdict comes from its rows in
# ../dev_grid, `run.sh mend` there).
#
#   benchmarks/mkeb/results/dev_chosen/run.sh pin ALG...     # copy hparams/<ALG>/qwen2.5-0.5b*.yaml here (once)
#                                                            # and the grid's neuron cache (MEMLA's attributions)
#   ONLY=unedited,mend benchmarks/mkeb/results/dev_chosen/run.sh [N]   # these methods on dev records 1..N
#   benchmarks/mkeb/results/dev_chosen/run.sh [N]            # every method (default N = 10)
#   benchmarks/mkeb/results/dev_chosen/run.sh report         # report.md of these rows (composite, Pareto view,
#                                                            # what the edited model says); the grid, its curves
#                                                            # and the prompt formats: ../dev_grid/report.md
#   ONLY=preset benchmarks/mkeb/results/dev_chosen/run.sh    # the refined preset and its ablations (issue 28)
#   benchmarks/mkeb/results/dev_chosen/run.sh preset         # their table
#
# Resumable: rows already written are skipped. LANES=2 splits the records over two one-thread
# processes (strided shards), as ../dev_grid/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
PY="${MEMLA_PYTHON:-$BIN/python}"
R="${DEV_CHOSEN_DIR:-benchmarks/mkeb/results/dev_chosen}"
# ONLY=preset: the refined preset and one ablation per switch (its table: `run.sh preset`)
PRESET=memla_refined,memla_refined_no_scored_target,memla_refined_no_each_position,memla_refined_no_k_of_n
PRESET=$PRESET,memla_refined_no_generic_filter,memla_refined_no_locality
case "${1:-}" in
    pin)    shift
            for alg in "$@"; do
                mkdir -p "$R/hparams/$alg"
                for f in hparams/"$alg"/qwen2.5-0.5b*.yaml; do
                    [ -e "$R/hparams/$alg/$(basename "$f")" ] || cp "$f" "$R/hparams/$alg/"
                done
            done
            # MEMLA's attributions on these records are the grid's (same prompts, model and settings)
            G="${DEV_GRID_DIR:-benchmarks/mkeb/results/dev_grid}"
            if [ -d "$G/neurons" ]; then
                mkdir -p "$R/neurons"
                (cd "$G/neurons" && find . -name '*.json' -print0) | while IFS= read -r -d '' f; do
                    [ -e "$R/neurons/$f" ] || { mkdir -p "$R/neurons/$(dirname "$f")"; cp "$G/neurons/$f" "$R/neurons/$f"; }
                done
            fi
            exit 0 ;;
    report) exec "$PY" -m memla_mkeb.report "$R" --out "$R/report.md" ;;
    preset) exec "$PY" benchmarks/mkeb/preset_table.py "$R" --preset memla_refined --methods "unedited,memla,$PRESET" --decide ;;
esac
N="${1:-10}"
LANES="${LANES:-1}"
# memla_ig5 (5 integrated-gradient steps) runs in the same sitting as ROME, so its edit time (its own
# attribution included: its cache key differs from the grid's) compares with ROME's in one process
METHODS="${ONLY:-unedited,memla,memla_ig5,rome,memit,ft_l,ft_m,lora,ike,mend}"
[ "$METHODS" = preset ] && METHODS="unedited,memla,$PRESET"
COMMON=(data=dev "source_langs=[en]" "methods=[$METHODS]" "run_dir=$R" "run.neuron_dir=$R/neurons"
        "hparams_dir=$R/hparams" prompt_format=preamble)

source benchmarks/mkeb/results/lanes.sh

run_lanes
