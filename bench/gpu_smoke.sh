#!/usr/bin/env bash
# GPU smoke of the published tasks: each task's smoke profile end to end on one GPU with
# synthetic data, through the real prepare, sandbox, evaluator and scorer. Prints, per task and
# phase, the status, the wall time and the peak GPU and host memory. Budget: under 8 minutes.
#
#   bench/gpu_smoke.sh [DEVICE]        (default 0; the pinned upstream files come from
#                                       ../shared/upstream or $AR_UPSTREAM, checked by sha256)
#   bench/gpu_smoke.sh --cpu           a dry run of every script without a GPU
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
if [ "${1:-}" = "--cpu" ]; then args=(--cpu); else args=(--device "${1:-0}"); fi
up=${AR_UPSTREAM:-../shared/upstream}
echo "== host"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
status=0
echo "== cifar-airbench96 (profile smoke)"
timeout 300 "$py" bench/gpu_smoke_cifar.py "${args[@]}" --upstream "$up/cifar10-airbench/airbench96_faster.py" || status=1
echo "== parameter-golf (profile gpu-smoke; cpu-smoke with --cpu)"
timeout 300 "$py" bench/gpu_smoke_golf.py "${args[@]}" --upstream "$up/parameter-golf" || status=1
echo "== nanochat-d12 (profile gpu-smoke; cpu-smoke with --cpu)"
timeout 420 "$py" bench/gpu_smoke_nanochat.py "${args[@]}" --upstream "$up/nanochat" || status=1
exit $status
