#!/usr/bin/env bash
# Create (or reuse) ./.venv and install kmri_jax into it with the given extras.
# Usage: source tools/setup_env.sh [extras]   e.g. "test,torch"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${KMRI_VENV:-$root/.venv}"
extras="${1:-}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
"$venv/bin/pip" install -q -e "$spec"
export PATH="$venv/bin:$PATH"
