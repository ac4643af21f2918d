#!/usr/bin/env bash
# Create .venv and install ferret with its dev tools. Idempotent and quiet on a second run.
# torch is installed first, pinned to the local CPU wheel, so that the package's own range
# (torch>=2.4) is already satisfied and pip never resolves it to a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check "torch==${FERRET_TORCH_VERSION:-2.13.0}"
fi
stamp=.venv/.ferret-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
    touch "$stamp"
fi
