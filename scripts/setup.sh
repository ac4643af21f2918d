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
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    # Also compiles pyproject's `[tool.ferret] compiled` modules with mypyc (setup.py), in this
    # environment (no isolated build): against the mypyc runtime library (librt) it will run with.
    .venv/bin/pip install -q --disable-pip-version-check setuptools "mypy>=1.8" "librt>=0.17"
    .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation -e ".[dev]"
    touch "$stamp" .venv/.ferret-compiled
fi
# A compiled source (mypyc module or C kernel) edited since the last build: rebuild in place
# (quietly; a failed build leaves pure Python, and planner.native never loads a stale build
# either way). Retried when a source changes.
compiled=$(.venv/bin/python -c "import tomllib; b = tomllib.load(open('pyproject.toml', 'rb'))['tool']['ferret']; print(*b['compiled'], *b['kernels'])")
for src in $compiled setup.py; do
    if [ "$src" -nt .venv/.ferret-compiled ]; then
        .venv/bin/python setup.py -q build_ext --inplace >/dev/null 2>.venv/.ferret-compiled.log \
            || echo "setup: compiling failed (pure Python runs): .venv/.ferret-compiled.log" >&2
        touch .venv/.ferret-compiled
        break
    fi
done
