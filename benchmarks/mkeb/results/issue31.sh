#!/usr/bin/env bash
# Issue 31 measurements on the default model (sequential editing, perplexity, edits from de/ru/ja).
# Not run by the tests; the commands are explained in benchmarks/mkeb/README.md ("Sequential editing",
# "Held-out perplexity", "Edit languages"). Every step resumes when run again.
#   benchmarks/mkeb/results/issue31.sh seq10|seq50|sources|report   (MEMLA_BIN: where memla-mkeb is; EXTRA: more overrides)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
R=benchmarks/mkeb/results
SEQ_METHODS="unedited,memla,memla_refined,rome,memit,ft_m,lora,ike"
case "${1:-}" in
    seq10)   # 5 sequences of 10 edits on the first 50 test records, edited in en; perplexity after each sequence
             "$BIN/memla-mkeb" data=test data.limit=50 sequential.n=10 source_langs=[en] "methods=[$SEQ_METHODS]" \
                 perplexity.enabled=true "run_dir=$R/seq10" ${EXTRA:-} ;;
    seq50)   # 1 sequence of 50 edits on the same records
             "$BIN/memla-mkeb" data=test data.limit=50 sequential.n=50 source_langs=[en] "methods=[$SEQ_METHODS]" \
                 perplexity.enabled=true "run_dir=$R/seq50" ${EXTRA:-} ;;
    sources) # single edits stated in de, ru and ja on the first 30 test records
             "$BIN/memla-mkeb" data=test data.limit=30 "source_langs=[de,ru,ja]" \
                 "methods=[unedited,memla,memla_refined,rome]" "run_dir=$R/de_ru_ja" ${EXTRA:-} ;;
    report)  # two reports: the sequential runs share their settings (their unedited rows coincide), the
             # de/ru/ja run is a plain single-edit run without perplexity
             dirs=(); for d in seq10 seq50; do [ -d "$R/$d" ] && dirs+=("$R/$d"); done
             if [ ${#dirs[@]} -gt 0 ]; then "$BIN/memla-mkeb-report" "${dirs[@]}" --out "$R/sequential_report.md"; fi
             if [ -d "$R/de_ru_ja" ]; then "$BIN/memla-mkeb-report" "$R/de_ru_ja" --out "$R/de_ru_ja/report.md"; fi ;;
    *) echo "usage: $0 seq10|seq50|sources|report" >&2; exit 2 ;;
esac
