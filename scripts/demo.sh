#!/usr/bin/env bash
# The local demo, from a fresh clone: builds .venv if needed, then runs
# synthetic clips -> preprocess -> train `tiny` -> evaluate -> report folder (default demo_out/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m fer_lib.demo "$@"
