#!/usr/bin/env bash
# Creates (or refreshes) the local environment .venv from nothing: exactly the versions of
# requirements-lock.txt (the tested environment: the matched torch trio, the Colab requirements, the
# test tools; `bash scripts/lock.sh` refreshes it from requirements-dev.txt), and fer_lib itself in
# editable mode. Idempotent: it does nothing when .venv already matches the lock and requirements files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(cat requirements-lock.txt requirements-dev.txt requirements-colab.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first run downloads torch, a few GB) ..."
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-lock.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
echo ".venv ready: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
