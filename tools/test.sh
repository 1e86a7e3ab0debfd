#!/usr/bin/env bash
# Set up ./.venv (first run: a few minutes) and run the whole test suite, including the
# checks against PyTorch references (hence the torch extra), on one pytest-xdist worker per
# core (expensive shared fixtures are computed once per run: tests/once.py).
# Arguments go to pytest: `bash tools/test.sh tests/sim -n 0` runs one folder in-process.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh test,torch
exec python -m pytest -q -n auto "$@"
