#!/usr/bin/env bash
# The unedited model under each prompt format on the shipped dev records (source en, all 12 languages):
# the measurement behind the harness's default prompt_format (rule: benchmarks/mkeb/README.md, "Prompt format").
# One run dir per format; the method is named unedited_<format> so the three can be reported together
# (a report refuses one method name with different settings). Resumable: rerun to finish.
#
#   benchmarks/mkeb/results/dev_prompt_format.sh          # the three runs, then their report
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
R=benchmarks/mkeb/results/dev_prompt_format
# eval.gen_max_new_tokens=0: the generation-based metrics are not needed by the rule and would double the
# cost; run.threads=1 (with OMP_WAIT_POLICY=PASSIVE): on a shared 2-core machine two spinning threads lose time.
export OMP_WAIT_POLICY=PASSIVE
for f in bare preamble chat; do
    "$BIN/memla-mkeb" "+catalog.unedited_$f={kind:unedited}" "methods=[unedited_$f]" data=dev "source_langs=[en]" \
        "prompt_format=$f" "run_dir=$R/$f" run.progress=false run.threads=1 eval.gen_max_new_tokens=0
done
"$BIN/memla-mkeb-report" "$R" --out "$R/report.md"
