#!/usr/bin/env bash
# The published head-to-head under the fair protocol (benchmarks/mkeb/README.md, "Tuning grid"): the
# shipped CounterFact MKEB test ids, default model, prompt format preamble, every method at the point
# the dev grid chose (../dev_grid/selection.json), MEMLA's refined preset with the switches the dev rule
# kept, MEND with its dev verdict (../dev_grid/method_status.json). The first 30 en records are also the
# refined preset's one test-split comparison (issue 28): `run.sh en 30` first, then grow to 60.
#
#   benchmarks/mkeb/results/protocol2/run.sh pin            # once, before the first row: copy the repo's hparams
#   benchmarks/mkeb/results/protocol2/run.sh en [N]         # source en, first N (60) test ids, every method
#   benchmarks/mkeb/results/protocol2/run.sh zh_fr [N]      # sources zh and fr, first N (30)
#   benchmarks/mkeb/results/protocol2/run.sh ablations [N]  # source en, first N (30): MEMLA's and the preset's ablations
#   benchmarks/mkeb/results/protocol2/run.sh report         # report.md of the run dirs made so far
#   benchmarks/mkeb/results/protocol2/run.sh neurons        # neuron_diagnostics.md: memla's and the preset's sets
#   benchmarks/mkeb/results/protocol2/run.sh publish        # docs/RESULTS.md from them (the first series' page
#                                                           # becomes docs/RESULTS_v1.md), when the series is complete
#
# ONLY=a,b,... runs a subset of the methods of en or zh_fr; WITHOUT=a,b,... leaves methods out of any list
# (series.sh makes MEND's rows apart, see mend_rows.py). Resumable: records are added one at a time and rows already written are skipped; LANES=2 splits the
# records over two one-thread processes (strided shards), LANE=i runs one of them. All run dirs share
# one neuron cache. The hparams are the pinned copies in ./hparams: a run dir refuses rows made with
# another hparams file content, so the series never mixes operating points.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
BIN="${MEMLA_BIN:-.venv/bin}"
PY="${MEMLA_PYTHON:-$BIN/python}"
R="${PROTOCOL2_DIR:-benchmarks/mkeb/results/protocol2}"
METHODS="unedited,memla,memla_refined,rome,memit,mend,ft_l,ft_m,lora,ike"
# the paper's ablations of MEMLA, then one row per switch of the refined preset (keep only the switches
# the dev rule kept: the ablation of a switch that is off would repeat memla_refined)
ABLATIONS="unedited,memla_no_mask,memla_no_lse,memla_no_lie,memla_scale0p3,memla_scale1p0"
ABLATIONS="$ABLATIONS,memla_refined_no_scored_target,memla_refined_no_each_position,memla_refined_no_k_of_n"
ABLATIONS="$ABLATIONS,memla_refined_no_generic_filter,memla_refined_no_locality"
case "${1:-}" in
    pin)    for alg in MEMLA ROME MEMIT MEND FT LoRA IKE; do
                mkdir -p "$R/hparams/$alg"
                for f in hparams/"$alg"/qwen2.5-0.5b*.yaml; do
                    [ -e "$R/hparams/$alg/$(basename "$f")" ] || cp "$f" "$R/hparams/$alg/"
                done
            done
            # which dev evidence chose each pinned file (refused if a pinned value is not the grid's choice);
            # the report's "Operating points" cites it and checks the rows' hparams hashes against it
            [ -e "$R/operating_points.json" ] || "$PY" -m memla_mkeb.operating_points \
                --selection benchmarks/mkeb/results/dev_grid/selection.json --hparams-dir "$R/hparams" \
                --out "$R/operating_points.json" \
                --also "mend=no grid (its strength is learned in training); functional by the dev test: benchmarks/mkeb/results/dev_grid/method_status.json" \
                --also "memla_refined=apply_scale as chosen for memla; its switches kept by the dev keep rule: benchmarks/mkeb/results/dev_chosen/preset_table.md"
            exit 0 ;;
    report) dirs=(); for d in en zh_fr ablations; do [ -d "$R/$d" ] && dirs+=("$R/$d"); done
            exec "$PY" -m memla_mkeb.report "${dirs[@]}" --out "$R/report.md" --common-records ;;
    neurons) # neuron statistics of memla and the preset over every record the series' cache holds
            N="$R/neurons"; K=Qwen2.5-Coder-0.5B-Instruct-Q4_K_M-fp32-1d9614638d18__amig-m20-t0.3
            B=benchmarks/mkeb/results/background
            { echo "# Neuron diagnostics of the second series: memla and memla_refined"; echo
              echo "Made by \`benchmarks/mkeb/results/protocol2/run.sh neurons\` from the series' neuron cache (every record it holds)."; echo
              echo "## memla (the paper's attribution; LIKN = en & zh & fr)"; echo
              "$PY" benchmarks/mkeb/neuron_diagnostics.py --neuron-dir "$N" --key "$K-preamble" --records all \
                  --background "$B" --max-share 0.15 --min-langs 2; echo
              echo "## memla_refined (scored target, each position; LIKN = 2 of 3; generic filter 0.15)"; echo
              "$PY" benchmarks/mkeb/neuron_diagnostics.py --neuron-dir "$N" --key "$K-scored-preamble-poseach" \
                  --records all --background "$B" --max-share 0.15 --min-langs 2 --filter --compare "$K-preamble"
            } > "$R/neuron_diagnostics.md"
            exit 0 ;;
    publish) # docs/RESULTS.md from this series (relative paths, so the page's Regenerate line works in any
            # checkout); the first series' page is kept once as docs/RESULTS_v1.md, never mixed into this one
            P=benchmarks/mkeb/results/protocol2; V1=benchmarks/mkeb/results
            # the pages are written by this checkout's report code, the code the regenerate tests run (the
            # lanes' PYTHONPATH points at the pinned harness checkout, whose report code is older)
            export PYTHONPATH="$PWD:$PWD/benchmarks/mkeb"
            if [ ! -e docs/RESULTS_v1.md ]; then
                "$PY" -m memla_mkeb.report "$V1/en" "$V1/zh_fr" "$V1/ablations" --out docs/RESULTS_v1.md --common-records
            fi
            # the refined preset's one test comparison reads MEND's en rows too, remade by the mend step
            "$PY" -m memla_mkeb.report "$P/en" --out "$P/report_en30.md" --common-records --first 30
            dirs=(); for d in en zh_fr ablations; do [ -d "$P/$d" ] && dirs+=("$P/$d"); done
            rm -rf docs/RESULTS_files  # the first series' figures: the new page writes its own
            exec "$PY" -m memla_mkeb.report "${dirs[@]}" --out docs/RESULTS.md --common-records ;;
    en)        NAME=en;        N="${2:-60}"; SOURCES=en;    LIST="${ONLY:-$METHODS}" ;;
    zh_fr)     NAME=zh_fr;     N="${2:-30}"; SOURCES=zh,fr; LIST="${ONLY:-$METHODS}" ;;
    ablations) NAME=ablations; N="${2:-30}"; SOURCES=en;    LIST="$ABLATIONS" ;;
    *) echo "usage: $0 pin | en|zh_fr|ablations [N] | report | neurons | publish" >&2; exit 2 ;;
esac
if [ -n "${WITHOUT:-}" ]; then  # drop the named methods from the list, keeping its order
    kept=""; for m in ${LIST//,/ }; do [[ ",$WITHOUT," == *",$m,"* ]] || kept="$kept,$m"; done; LIST="${kept#,}"
fi
[ -d "$R/hparams/MEMLA" ] || { echo "run '$0 pin' first (the hparams are pinned before the first row)" >&2; exit 2; }
LANES="${LANES:-1}"
COMMON=(data=test "source_langs=[$SOURCES]" "methods=[$LIST]" "run_dir=$R/$NAME" "run.neuron_dir=$R/neurons"
        "hparams_dir=$R/hparams" prompt_format=preamble)

source benchmarks/mkeb/results/lanes.sh

run_lanes
