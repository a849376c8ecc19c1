#!/usr/bin/env bash
# Create .venv (if needed) and install the project with its test extras into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch>=2.2,<2.14 in pyproject.toml resolves to the on-disk CPU build (2.13.0+cpu) here.
.venv/bin/python -m pip install --quiet -e ".[test]"
