#!/usr/bin/env bash
# Set up ./.venv (first run: a few minutes) and run the whole test suite, including the
# checks against PyTorch references (hence the torch extra).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh test,torch
exec python -m pytest -q "$@"
