#!/usr/bin/env bash
# Issue 31 measurements on the default model (sequential editing, perplexity, batch editing, edits from
# de/ru/ja). Not run by the tests; the commands are explained in benchmarks/mkeb/README.md ("Sequential
# editing", "Batch editing", "Held-out perplexity", "Edit languages"). Every step resumes when run again
# (a sequence goes on from its last finished edit).
#   benchmarks/mkeb/results/issue31.sh seq10|seq50|ppl1|batch|sources|report
# MEMLA_BIN: where memla-mkeb is; ONLY: a comma-separated subset of the step's methods; EXTRA: more overrides
# (e.g. "shard.count=3 shard.index=0" to run a second method subset on the same run dir under its own tag).
# Every step edits with the published series' pinned hparams (protocol2/hparams: each method at the point
# the dev grid chose) and its prompt format, so these rows compare with that series.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
R=benchmarks/mkeb/results
P="${PROTOCOL2_DIR:-$R/protocol2}"
[ -d "$P/hparams/MEMLA" ] || { echo "pin the hparams first: $R/protocol2/run.sh pin" >&2; exit 2; }
COMMON=(data=test prompt_format=preamble "hparams_dir=$P/hparams")
SEQ_METHODS="${ONLY:-unedited,memla,memla_refined,rome,memit,ft_m,lora,ike}"
case "${1:-}" in
    seq10)   # sequences of 10 edits on the first N (50) test records, edited in en; perplexity after each
             "$BIN/memla-mkeb" "${COMMON[@]}" data.limit="${N:-50}" sequential.n=10 source_langs=[en] \
                 "methods=[$SEQ_METHODS]" perplexity.enabled=true "run_dir=$R/seq10" ${EXTRA:-} ;;
    seq50)   # 1 sequence of 50 edits on the same records
             "$BIN/memla-mkeb" "${COMMON[@]}" data.limit=50 sequential.n=50 source_langs=[en] \
                 "methods=[$SEQ_METHODS]" perplexity.enabled=true "run_dir=$R/seq50" ${EXTRA:-} ;;
    ppl1)    # single edits of the first N (10) test records, the records of seq10's sequence, with the same
             # perplexity texts: the downstream cost of one edit next to that of a sequence (one report);
             # MEMLA's attributions of these records are the published series' (its neuron cache), as in sources
             "$BIN/memla-mkeb" "${COMMON[@]}" data.limit="${N:-10}" source_langs=[en] \
                 "methods=[$SEQ_METHODS]" perplexity.enabled=true "run_dir=$R/ppl1" \
                 "run.neuron_dir=$P/neurons" ${EXTRA:-} ;;
    batch)   # the first 32 test records in batches of 1, 8 and 32: MEMLA's joint edit against MEMIT's batch
             # edit (ROME, not batchable in EasyEdit, is left out: one by one it is a sequence, see seq10/seq50).
             # A batch attributes each of its facts on the unedited model. Batches 1 and 8 did so in their own
             # run dirs and found, for all 32 facts in en, zh and fr, exactly the neurons the published series
             # had cached; batch 32 reads that cache (batch 1 spent 169 s a fact on them: 1.5 h of one
             # thread), and its edit seconds per fact then hold no attribution.
             for B in 1 8 32; do
                 NEURONS=(); if [ "$B" = 32 ]; then NEURONS=("run.neuron_dir=$P/neurons"); fi
                 "$BIN/memla-mkeb" "${COMMON[@]}" data.limit=32 batch.size=$B source_langs=[en] \
                     "methods=[${ONLY:-unedited,memla,memit}]" "run_dir=$R/batch$B" "${NEURONS[@]}" ${EXTRA:-}
             done ;;
    sources) # single edits stated in de, ru and ja on the first 30 test records; the en/zh/fr attributions
             # are the published series' (same records, prompts and settings: its neuron cache)
             "$BIN/memla-mkeb" "${COMMON[@]}" data.limit=30 "source_langs=[de,ru,ja]" \
                 "methods=[${ONLY:-unedited,memla,memla_refined,rome}]" "run_dir=$R/de_ru_ja" \
                 "run.neuron_dir=$P/neurons" ${EXTRA:-} ;;
    report)  # three reports: the sequential runs and the single edits with perplexity share their settings
             # (their unedited rows coincide), the batch sizes one table, the de/ru/ja run beside the published
             # series' en rows of the same 30 records (same hparams and prompts), so that its "Edit languages
             # compared" section sets each method's edits from de, ru and ja against its edits from en
             dirs=(); for d in seq10 seq50 ppl1; do [ -d "$R/$d" ] && dirs+=("$R/$d"); done
             if [ ${#dirs[@]} -gt 0 ]; then "$BIN/memla-mkeb-report" "${dirs[@]}" --out "$R/sequential_report.md"; fi
             dirs=(); for B in 1 8 32; do [ -d "$R/batch$B" ] && dirs+=("$R/batch$B"); done
             if [ ${#dirs[@]} -gt 0 ]; then "$BIN/memla-mkeb-report" "${dirs[@]}" --out "$R/batch_report.md"; fi
             if [ -d "$R/de_ru_ja" ]; then
                 "$BIN/memla-mkeb-report" "$P/en" "$R/de_ru_ja" --first 30 --out "$R/de_ru_ja/report.md"
             fi ;;
    *) echo "usage: $0 seq10|seq50|ppl1|batch|sources|report" >&2; exit 2 ;;
esac
