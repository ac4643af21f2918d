#!/usr/bin/env bash
# The main job on built-in data, from a fresh machine: set up, then
#   profile mnistnet on this CPU → plan Ferret at M+ and M− → simulate → what-if sweep of
#   budgets × strategies → learn the digits stream with Oracle, 1-Skip and the Ferret plans →
#   compare the four runs (which learned best for how much memory) in one table.
# Everything lands in out/demo/ (or the folder given as $1).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${FERRET_DEMO_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh  # the test that runs the demo skips it
out=${1:-out/demo}
ferret=.venv/bin/ferret
step() { printf '\n== %s\n' "$*"; }

step "profile mnistnet (8×8 digits, 10 classes) on this CPU"
$ferret profile --model mnistnet --input-shape 1,8,8 --classes 10 --out "$out/profile.json"

for budget in max min; do
    step "plan Ferret at budget $budget for learning (the default objective; arrival interval: the slowest layer's forward, as in the paper)"
    $ferret plan --profile "$out/profile.json" --budget "$budget" --out "$out/plan-$budget.json"
done

step "simulate the M+ plan on 20,000 arrivals"
$ferret simulate --plan "$out/plan-max.json" --profile "$out/profile.json" --samples 20000 --out "$out/sim"

step "what-if: 12 budgets × 6 pipeline strategies (Ferret for rate and for learning), planned and simulated"
$ferret whatif --profile "$out/profile.json" --budgets auto:12 --samples 5000 \
    --strategies ferret,ferret-learning,pipedream,pipedream-2bw,gpipe,1f1b --out "$out/whatif"

common=(--dataset digits --stream class-incremental --model mnistnet --profile "$out/profile.json" --seed 0)
for framework in oracle 1-skip; do
    step "learn: $framework on class-incremental digits"
    $ferret run --framework "$framework" "${common[@]}" --out "$out/run-$framework"
done
for budget in max min; do
    label=$([ "$budget" = max ] && echo "M+" || echo "M−")
    step "learn: the Ferret $label plan, replayed (default compensation; summary.json reports its efficacy)"
    $ferret run --plan "$out/plan-$budget.json" --mode replay "${common[@]}" --out "$out/run-ferret-$budget"
done

step "compare the four runs: which learned best for how much memory (oagm/tagm against 1-Skip)"
echo "(also in $out/: compare/ (the table, accuracy.png, memory_vs_accuracy.png), whatif/rate_vs_memory.png, run-*/accuracy.png, sim/chrome_trace.json for Perfetto)"
# its own folder: an output folder is replaced as a whole, and out/demo holds the runs it reads
$ferret compare "$out/run-oracle" "$out/run-1-skip" "$out/run-ferret-max" "$out/run-ferret-min" --out "$out/compare"
