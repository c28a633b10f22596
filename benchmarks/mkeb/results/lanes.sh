# Sourced by the dev run scripts: run_lanes runs memla_mkeb.app with the array COMMON on records 1..N,
# one record per sitting, either in one process (LANES=1) or in LANES one-thread processes, lane i
# taking the records of strided shard i. Needs PY, N, LANES and COMMON.
# A sitting whose rows are all written already is skipped after a quick look at the run dir
# (sitting_done.py asks the harness's plan), so resuming a long series does not start the harness
# once per finished record. Before a sitting, keep_plan.py keeps a copy of the run dir's plan per method
# set, so a step that runs fewer methods (WITHOUT=mend) does not drop the others' settings from the report.

sitting() {  # sitting N OVERRIDES...: the harness on records 1..N, unless its plan says nothing is left
    local n="$1"; shift
    if [ "$("$PY" benchmarks/mkeb/results/sitting_done.py "$@" 2>/dev/null)" = "nothing to do" ]; then
        echo "lanes: every row of the sitting data.limit=$n is written, skipped" >&2
        return 0
    fi
    local arg
    for arg in "$@"; do  # the plan this sitting overwrites may name methods it does not run: keep a copy
        case "$arg" in run_dir=*) "$PY" benchmarks/mkeb/results/keep_plan.py "${arg#run_dir=}" ;; esac
    done
    "$PY" -m memla_mkeb.app "$@"
}

lane() {  # lane INDEX: the records of strided shard INDEX of LANES, one record per sitting
    local i="$1" n
    for n in $(seq 1 "$N"); do
        if [ "$LANES" -eq 1 ]; then
            sitting "$n" "${COMMON[@]}" "data.limit=$n"
        elif [ $(( (n - 1) % LANES )) -eq "$i" ]; then
            sitting "$n" "${COMMON[@]}" "data.limit=$n" "shard.count=$LANES" "shard.index=$i" \
                shard.mode=strided run.threads=1
        fi
    done
}

run_lanes() {
    if [ "$LANES" -eq 1 ]; then
        lane 0
    elif [ -n "${LANE:-}" ]; then   # only this lane (e.g. one lane per terminal, or one started later)
        export OMP_WAIT_POLICY=PASSIVE
        lane "$LANE"
    else
        export OMP_WAIT_POLICY=PASSIVE
        local i
        for i in $(seq 0 $(( LANES - 1 ))); do lane "$i" & done
        wait
    fi
}
