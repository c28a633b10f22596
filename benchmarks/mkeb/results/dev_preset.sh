#!/usr/bin/env bash
# The refined MEMLA preset on the dev records (source en): each switch on and off, next to the paper's
# MEMLA and the unedited model; the dev table of benchmarks/mkeb/preset_table.py. Never the test ids.
# Two run dirs so four processes share the work on a 2-core machine: dev_preset (unedited, memla,
# memla_refined, then the ablations) over the first 5 dev ids, and dev_preset_ablations (the ablations)
# over the same ids in reverse order (ids.txt there), so the two do not attribute the same record at once.
# Both share the neuron cache of the committed series (the scored form has its own key). Resumable.
#
#   benchmarks/mkeb/results/dev_preset.sh run      # the four shards in the background, logs in /tmp
#   benchmarks/mkeb/results/dev_preset.sh table    # the table from the rows written so far
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
R=benchmarks/mkeb/results
ALL="unedited,memla,memla_refined,memla_refined_no_locality,memla_refined_no_generic_filter"
ALL="$ALL,memla_refined_no_k_of_n,memla_refined_no_scored_target"
ABL="memla_refined_no_locality,memla_refined_no_k_of_n,memla_refined_no_generic_filter"
common=("source_langs=[en]" "run.neuron_dir=$R/neurons" shard.count=2 shard.mode=strided run.threads=1
        run.malloc_mmap_threshold=null run.progress=false)
case "${1:-}" in
    run)   for i in 0 1; do
               nice -n 19 "$BIN/memla-mkeb" data=dev data.limit=5 "methods=[$ALL]" "run_dir=$R/dev_preset" \
                   shard.index=$i "${common[@]}" > "/tmp/dev_preset_s$i.log" 2>&1 &
               nice -n 19 "$BIN/memla-mkeb" data=dev "data.ids=$R/dev_preset_ablations/ids.txt" "methods=[$ABL]" \
                   "run_dir=$R/dev_preset_ablations" shard.index=$i "${common[@]}" > "/tmp/dev_preset_abl_s$i.log" 2>&1 &
           done; wait ;;
    table) "$BIN/python" benchmarks/mkeb/preset_table.py "$R/dev_preset" "$R/dev_preset_ablations" --preset memla_refined \
               --methods "unedited,memla,${ALL#unedited,memla,}" ;;
    *) echo "usage: $0 run|table" >&2; exit 2 ;;
esac
