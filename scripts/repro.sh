#!/usr/bin/env bash
# Set up and run the whole default pipeline (`dvc repro`) on the embedded synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DVC_NO_ANALYTICS=1
source .venv/bin/activate
dvc repro "$@"
