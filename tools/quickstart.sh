#!/usr/bin/env bash
# Set up ./.venv (first run: a few minutes) and run the main job on the built-in phantom data:
# the quickstart training run (about 3 minutes on a 2-core CPU). Extra arguments go to
# kmri-train, e.g. --config.train.num_epochs=8.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh ""   # no extras (and not this script's arguments)
exec kmri-train --config experiments/quickstart.py --workdir "${KMRI_WORKDIR:-runs/quickstart}" "$@"
