#!/usr/bin/env bash
# The GPU path in under 5 minutes: `single` and `ddp` (one process under torchrun) with bfloat16
# at batch 8, 32 and 128 on oral-age, at bench/train_throughput.py's configuration. Prints one
# JSON object: samples/s and peak GPU memory per run.
#
#   bash bench/gpu_check.sh [path/to/oral-age]     # default: ../shared/data/oral-age
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/oral-age}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
test -f "$DATA/table.biom" || { echo "gpu_check: no $DATA/table.biom (give the oral-age folder as the argument)" >&2; exit 2; }

for parallel in single ddp; do
    # 135 s each at most, so the whole check stays under 5 minutes
    timeout 135 python bench/train_throughput.py --parallel "$parallel" --nproc 1 --amp \
        --batch-sizes 8,32,128 --max-batches 40 --data "$DATA" > "$OUT/$parallel.json"
done

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

import torch

runs = []
for name in ("single", "ddp"):
    for run in json.loads((Path(sys.argv[1]) / f"{name}.json").read_text())["runs"]:
        runs.append({k: run[k] for k in ("parallel", "processes", "batch_per_process", "amp_bf16", "samples_per_s", "peak_gpu_memory_gb", "loader_workers")})
print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": runs}, indent=2))
PY
