#!/usr/bin/env bash
# Every run of the second series in the order they were queued, for one of two one-thread lanes:
#
#   LANE=0 benchmarks/mkeb/results/protocol2/series.sh     # in one terminal (or nohup ... &)
#   LANE=1 benchmarks/mkeb/results/protocol2/series.sh     # in another
#
# The order is the order of the issues they answer: the refined preset's one test comparison (en, first
# 30 records), then the published page (ablations on those 30, en grown to 60, sources zh and fr, then MEND's
# rows of en and zh/fr in one session), then
# sequences, batches, the extra edit languages and single edits with perplexity (../issue31.sh). Every
# step resumes where the rows end, so after an interruption the same command goes on; a finished step is a
# quick "nothing to do".
# Steps split by records (protocol2/run.sh's lanes, and shards of the de/ru/ja and batch runs) or, where
# a run is one sequence, by methods (ROME alone costs about as much as the others together).
# How far it has got: python -m memla_mkeb.progress benchmarks/mkeb/results/protocol2/{en,zh_fr,ablations} \
#   benchmarks/mkeb/results/{seq10,seq50,ppl1,batch1,batch8,batch32,de_ru_ja} (rows per method, sequences under way).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
LANE="${LANE:?set LANE=0 or LANE=1}"
P="benchmarks/mkeb/results/protocol2/run.sh"
I="benchmarks/mkeb/results/issue31.sh"
export OMP_WAIT_POLICY=PASSIVE
ONE="run.threads=1"
step() { echo "series lane $LANE: $* ($(date -u +%FT%TZ))"; }
# MEND's rows are made at the end, in one session, with one checkpoint (protocol2/mend_rows.py says why):
# en and zh_fr run every other method; the mend step waits for both lanes, moves MEND rows made with
# another checkpoint aside, then makes them. SYNC holds this sitting's flags (a new sitting clears its own).
SYNC="${SERIES_SYNC_DIR:-/tmp}/memla-series-mend"
rm -f "$SYNC.$LANE"; if [ "$LANE" = 0 ]; then rm -f "$SYNC.moved"; fi

step en 30;        WITHOUT=mend LANES=2 "$P" en 30
step ablations 30; LANES=2 "$P" ablations 30
# ROME/MEMIT statistics and the MEND checkpoint live in the machine's cache, which a new session lacks:
# the lanes build them side by side (lane 0 the statistics, about 20 min here, lane 1 MEND, about 30 min;
# MEND's training seeds itself, so it does not matter what ran before it), then each lane takes the other
# lock and finds the other's part built. Lane 0 then records their hashes and whether MEND's training
# curve repeats the dev one (prepared.py -> prepared.jsonl). One torch thread, as the series' harness
# sittings run (run.threads=1): a thread count can change the order of a float sum, and with it the
# checkpoint; the curve check shows whether it did.
PY="${MEMLA_PYTHON:-${MEMLA_BIN:-.venv/bin}/python}"
P2="${PROTOCOL2_DIR:-benchmarks/mkeb/results/protocol2}"
# seq50 (at the end) and LoRA's rows of seq10 and ppl1 run from a later pin, 4b808d1: e14d649 plus resumable
# LoRA sequences (its 50 edits with their scoring take about 2.5 h of one thread, more than a sitting has left
# after the steps before it, and e14d649 redid them from the first edit) and held-out perplexity measured in
# eval mode (e14d649 measured a LoRA-edited model with its adapter's dropout live). Nothing else differs;
# 4b808d1 is on main (merged). Its worktree sits beside the pinned one:
# git worktree add ../p2seq50 4b808d1 (SEQ50_TREE elsewhere).
SEQ50_CODE="${SEQ50_CODE:-4b808d1}"
S50="$(realpath -m "${SEQ50_TREE:-../p2seq50}")"
S50_PATH="$S50:$S50/benchmarks/mkeb"  # PYTHONPATH of a step that runs from that pin
if [ "$PY" != echo ] && [[ "$(git -C "$S50" rev-parse HEAD 2>/dev/null)" != "$SEQ50_CODE"* ]]; then
    echo "series lane $LANE: seq50 runs from commit $SEQ50_CODE; make its worktree first:" \
        "git worktree add $S50 $SEQ50_CODE" >&2
    exit 2
fi
prepare() {  # prepare LOCK METHODS
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 flock "/tmp/memla-prepare-$1.lock" "$PY" -m memla_plugin.easyedit.prepare \
        --methods "$2" --hparams-dir "$P2/hparams"
}
# Once every MEND row of en (60) and zh_fr (30 x zh, fr) is in and mend_checkpoint.json names the checkpoint
# they were made with, MEND is done: a later sitting on a machine whose cache lacks that checkpoint must not
# train another one (its training does not repeat) and move the published rows aside, so it skips both.
mend_rows() { cat "$P2/$1"/results*.jsonl 2>/dev/null | grep -c '"method": "mend"' || true; }
MEND_DONE=0
if [ -f "$P2/mend_checkpoint.json" ] && [ "$(mend_rows en)" -ge 60 ] \
    && [ "$(mend_rows zh_fr)" -ge 60 ]; then MEND_DONE=1; fi
step prepare
if [ "$MEND_DONE" = 1 ]; then prepare stats ROME,MEMIT
elif [ "$LANE" = 0 ]; then prepare stats ROME,MEMIT; prepare mend MEND; else prepare mend MEND; prepare stats ROME,MEMIT; fi
if [ "$LANE" = 0 ]; then "$PY" benchmarks/mkeb/results/protocol2/prepared.py; fi
step en 60;        WITHOUT=mend LANES=2 "$P" en 60
step zh_fr 30;     WITHOUT=mend LANES=2 "$P" zh_fr 30
if [ "$MEND_DONE" = 1 ]; then step "mend: done (MEND rows complete, checkpoint in mend_checkpoint.json)"; else
step mend;         touch "$SYNC.$LANE"
while [ ! -e "$SYNC.0" ] || [ ! -e "$SYNC.1" ]; do sleep 20; done
if [ "$LANE" = 0 ]; then "$PY" benchmarks/mkeb/results/protocol2/mend_rows.py en zh_fr; touch "$SYNC.moved"; fi
while [ ! -e "$SYNC.moved" ]; do sleep 5; done
ONLY=mend LANES=2 "$P" en 60
ONLY=mend LANES=2 "$P" zh_fr 30
fi
# A sequence saves its state after every edit (RUN_DIR/.sequence_state, not a result) so that the next sitting
# goes on from there; 50 ROME edits take about ten hours. A new checkout of the repository would lose it, so the
# state lives in the machine's cache beside the statistics, through a link (the .keep file stops the harness
# from removing the linked folder when its last sequence ends). A new machine loses the cache too: at the end
# of a session `seq_snapshot.py save` writes unfinished states to RUN_DIR/state_snapshot (committed), and
# here `restore` puts back any the cache lacks or holds at an earlier edit (one lane at a time).
keep_state() {
    local run_dir="benchmarks/mkeb/results/$1" cache="${MEMLA_CACHE:-$HOME/.cache/memla-plugin}/sequence_state/$1"
    if [ "$PY" = echo ]; then echo "keep_state $run_dir -> $cache"; return; fi  # a dry run changes nothing
    mkdir -p "$run_dir" "$cache" && touch "$cache/.keep"
    [ -e "$run_dir/.sequence_state" ] || ln -sfn "$cache" "$run_dir/.sequence_state"
    flock /tmp/memla-seq-snapshot.lock "$PY" benchmarks/mkeb/results/seq_snapshot.py restore "$run_dir" \
        || step "no snapshot of $1 restored (see above); its unfinished sequences start from their first edit"
}
keep_state seq10; keep_state seq50
# LoRA's rows of seq10 and ppl1 come from seq50's pin (below): e14d649 measured the held-out perplexity of the
# LoRA-edited model with its adapter's dropout live, so the pinned steps leave LoRA out and no lane makes them
# with e14d649. A sitting that runs fewer methods than the one before it rewrites the run dir's plan file:
# keep_plan.py first keeps a copy per method set (the report checks every method's rows against its plan).
R="benchmarks/mkeb/results"
keep_plans() { local d; for d in "$@"; do "$PY" "$R/keep_plan.py" "$R/$d" || true; done; }
# one sequence of 10 (the first 10 test records); a second method subset writes under its own file tag
if [ "$LANE" = 0 ]; then
    step seq10; keep_plans seq10; N=10 ONLY=unedited,rome,ike EXTRA="$ONE" "$I" seq10
else
    step seq10; N=10 ONLY=memla,memla_refined,memit,ft_m EXTRA="$ONE shard.count=2 shard.index=0" "$I" seq10
fi
step batch;   EXTRA="$ONE shard.count=2 shard.index=$LANE shard.mode=strided" "$I" batch
step sources; EXTRA="$ONE shard.count=2 shard.index=$LANE shard.mode=strided" "$I" sources
step ppl1;    keep_plans ppl1; ONLY=unedited,memla,memla_refined,rome,memit,ft_m,ike \
    EXTRA="$ONE shard.count=2 shard.index=$LANE shard.mode=strided" "$I" ppl1
# LoRA of seq10 (lane 0's sequence) and ppl1 (each lane its shard) from seq50's pin: the rows e14d649 made move
# to lora_perplexity_dropout_on.jsonl of their run dir (move_rows.py; rows made again stay), then the harness
# makes them again. The code changes only the perplexity's mode (benchmarks/mkeb/README.md, "Eval mode");
# on 2026-12-05 it took 76 min on lane 0 (seq10's sequence and 5 single edits; a third process ran beside
# the lanes part of the time) and 42 min on lane 1.
step "lora (eval-mode perplexity)"
MOVED=("$R/ppl1/results.shard${LANE}of2.jsonl"); if [ "$LANE" = 0 ]; then MOVED+=("$R/seq10/sequences.jsonl"); fi
"$PY" "$R/move_rows.py" --method lora --made-with e14d649 --archive lora_perplexity_dropout_on.jsonl "${MOVED[@]}"
if [ "$LANE" = 0 ]; then
    keep_plans seq10; N=10 ONLY=lora EXTRA="$ONE" PYTHONPATH="$S50_PATH" "$I" seq10
fi
keep_plans ppl1; ONLY=lora EXTRA="$ONE shard.count=2 shard.index=$LANE shard.mode=strided" \
    PYTHONPATH="$S50_PATH" "$I" ppl1
# 50 edits in a row: at seq10's seconds per edit (edit, scoring right after, rescoring at the end), ROME and IKE
# take about 13 h, MEMLA, MEMIT, FT-M and LoRA about 14 h.
if [ "$LANE" = 0 ]; then
    step seq50; ONLY=unedited,rome,ike EXTRA="$ONE" PYTHONPATH="$S50_PATH" "$I" seq50
else
    step seq50; ONLY=memla,memit,ft_m,lora EXTRA="$ONE shard.count=2 shard.index=0" \
        PYTHONPATH="$S50_PATH" "$I" seq50
fi
step done
