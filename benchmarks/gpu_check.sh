#!/usr/bin/env bash
# GPU check of the executors (one prepared script, < 5 minutes of device time):
#   profile mnistnet and convnet with CUDA events (ferret profile --device cuda), plan Ferret M+ on
#   one device, then run digits through the replay executor on cuda and through the distributed
#   executor (1 rank, NCCL, --streams 1 and --streams 4), and print throughput, drops and peak
#   memory (ledger, process RSS, torch.cuda.max_memory_allocated) per run. Last, issue 9's
#   executor overhead per op on gloo with the device machine's spare cores (2 ranks, and the
#   same plan on 1 rank): the measurement a shared 2-core VM cannot make (docs/RESULTS.md).
#
#   bash benchmarks/gpu_check.sh [OUT]          (default out/gpu_check)
#   DEVICE=cpu BACKEND=gloo STREAMS=1 SAMPLES=200 bash benchmarks/gpu_check.sh /tmp/x   # dry run on a CPU
#
# Each step runs under `timeout`, so a hang cannot eat the device budget.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/gpu_check}
device=${DEVICE:-cuda}
backend=${BACKEND:-nccl}
streams=${STREAMS:-"1 4"}
samples=${SAMPLES:-3000}
interval=${INTERVAL:-1ms}
python=${PYTHON:-.venv/bin/python}
ferret() { timeout "${STEP_TIMEOUT:-90}" "$python" -m analysis "$@"; }
mkdir -p "$out"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

for model in mnistnet convnet; do
    dir="$out/$model"
    ferret profile --model "$model" --input-shape 1,8,8 --classes 10 --device "$device" --out "$dir/profile.json"
    ferret plan --profile "$dir/profile.json" --budget max --devices 1 --out "$dir/plan.json"
    common=(--plan "$dir/plan.json" --dataset digits --model "$model" --profile "$dir/profile.json"
            --device "$device" --samples "$samples" --arrival-interval "$interval" --eval-every 0)
    ferret run "${common[@]}" --mode replay --out "$dir/replay"
    for k in $streams; do
        ferret run "${common[@]}" --mode distributed --nproc 1 --backend "$backend" --streams "$k" \
            --out "$dir/distributed-streams$k"
    done
done

"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
print(f"{'run':42} {'trained':>8} {'drop %':>7} {'thr/s':>9} {'ledger MiB':>10} {'RSS MiB':>8} {'CUDA MiB':>9}")
for summary in sorted(Path(sys.argv[1]).glob("*/*/summary.json")):
    s = json.loads(summary.read_text())
    ranks = s.get("per_rank") or []
    rss = max((r["rss_peak_bytes"] for r in ranks), default=0) / 2**20
    cuda = s.get("cuda_peak_memory_bytes")
    thr = s.get("throughput_per_s") or s.get("sim_throughput_per_s") or 0.0
    drop = 100 * (s.get("drop_rate") if s.get("drop_rate") is not None else s.get("sim_drop_rate", 0.0))
    print(f"{str(summary.parent.relative_to(sys.argv[1])):42} {s['trained']:8d} {drop:7.2f} {thr:9.1f} "
          f"{s['measured_peak_memory_bytes'] / 2**20:10.2f} {rss:8.1f} {'-' if cuda is None else f'{cuda / 2**20:.1f}':>9}")
PY

# Issue 9's overhead bar (<= 50 us/op), on a machine whose cores are not shared: CPU ranks, gloo.
timeout 180 "$python" benchmarks/distributed_overhead.py | tail -3
timeout 180 "$python" benchmarks/distributed_overhead.py --nproc 1 --stages 2 | tail -1
