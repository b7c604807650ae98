#!/usr/bin/env bash
# The GPU benchmark in one go (bench/bench_gpu.py): lightweight and full at their real sizes with random
# weights (no hub access), step time at batch 8 in bf16, peak GPU memory, embedding-cache build rate,
# MTCNN preprocessing on the GPU. Writes the figures, with the machine's name, into bench/results.json
# (section "gpu") and the README's Performance table. Bounded to 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 480 "$PYTHON" -m bench --only gpu
