# Sourced by the dev run scripts: run_lanes runs memla_mkeb.app with the array COMMON on records 1..N,
# one record per sitting, either in one process (LANES=1) or in LANES one-thread processes, lane i
# taking the records of strided shard i (LANE=i runs only that lane). Needs PY, N, LANES and COMMON.

lane() {  # lane INDEX: the records of strided shard INDEX of LANES, one record per sitting
    local i="$1" n
    for n in $(seq 1 "$N"); do
        if [ "$LANES" -eq 1 ]; then
            "$PY" -m memla_mkeb.app "${COMMON[@]}" "data.limit=$n"
        elif [ $(( (n - 1) % LANES )) -eq "$i" ]; then
            "$PY" -m memla_mkeb.app "${COMMON[@]}" "data.limit=$n" "shard.count=$LANES" "shard.index=$i" \
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
