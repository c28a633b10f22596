#!/usr/bin/env bash
# Every method at its chosen operating point on the shipped dev records (source en, prompt format
# preamble, generation-based metrics on): the dev-split run of the fair protocol
# (benchmarks/mkeb/README.md, "Tuning grid"). The points were chosen by ../dev_grid/run.sh select and
# written into the repository's hparams files; `pin` copies those files here once, so later comment
# edits there do not change this run's identity. MEND has no grid (its verdict comes from its rows in
# ../dev_grid, `run.sh mend` there).
#
#   benchmarks/mkeb/results/dev_chosen/run.sh pin ALG...     # copy hparams/<ALG>/qwen2.5-0.5b*.yaml here (once)
#   ONLY=unedited,mend benchmarks/mkeb/results/dev_chosen/run.sh [N]   # these methods on dev records 1..N
#   benchmarks/mkeb/results/dev_chosen/run.sh [N]            # every method (default N = 10)
#   benchmarks/mkeb/results/dev_chosen/run.sh report         # report.md with the grid, formats and Pareto view
#
# Resumable: rows already written are skipped. LANES=2 splits the records over two one-thread
# processes (strided shards), as ../dev_grid/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
PY="${MEMLA_PYTHON:-$BIN/python}"
R="${DEV_CHOSEN_DIR:-benchmarks/mkeb/results/dev_chosen}"
case "${1:-}" in
    pin)    shift
            for alg in "$@"; do
                mkdir -p "$R/hparams/$alg"
                for f in hparams/"$alg"/qwen2.5-0.5b*.yaml; do
                    [ -e "$R/hparams/$alg/$(basename "$f")" ] || cp "$f" "$R/hparams/$alg/"
                done
            done
            exit 0 ;;
    report) exec "$PY" -m memla_mkeb.report "$R" --out "$R/report.md" ;;
esac
N="${1:-10}"
LANES="${LANES:-1}"
METHODS="${ONLY:-unedited,memla,rome,memit,ft_l,ft_m,lora,ike,mend}"
COMMON=(data=dev "source_langs=[en]" "methods=[$METHODS]" "run_dir=$R" "run.neuron_dir=$R/neurons"
        "hparams_dir=$R/hparams" prompt_format=preamble)

source benchmarks/mkeb/results/lanes.sh

run_lanes
