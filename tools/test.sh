#!/usr/bin/env bash
# Set up ./.venv (first run: a few minutes) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh test
exec python -m pytest -q "$@"
