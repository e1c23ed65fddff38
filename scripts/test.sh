#!/usr/bin/env bash
# Sets up (see setup.sh: the active virtualenv, else ./.venv; ./.venv names it either way) and runs the whole test suite,
# slow tests included, with that virtualenv's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
