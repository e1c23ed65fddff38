#!/usr/bin/env bash
# Mutation testing of the modules that decide results (verdicts and scoring, selection, the search
# tree and loop, redaction, the run records): mutmut changes them one small edit at a time and runs
# the in-process tests that reach each edit; a mutant the tests do not notice "survives".
# Configured in pyproject.toml ([tool.mutmut]); slow (about an hour on 2 busy cores), not part of CI.
#   bash scripts/mutation.sh           # run (resumes an interrupted run), then print the score
#   bash scripts/mutation.sh --fresh   # forget earlier results first
# Then `.venv/bin/mutmut results` lists the survivors and `.venv/bin/mutmut show NAME` shows one.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || { echo "mutation: no .venv here; run bash scripts/setup.sh first" >&2; exit 2; }
"$python" -c 'import mutmut' 2>/dev/null || "$python" -m pip install --disable-pip-version-check -q -e '.[mutation]'
if [ "${1:-}" = "--fresh" ]; then
  rm -rf mutants
fi
# one mutant at a time by default: the tests start sandboxed programs of their own
nice -n 15 .venv/bin/mutmut run --max-children "${MUTATION_CHILDREN:-1}" >/dev/null || true
.venv/bin/mutmut results --all true | "$python" scripts/mutation_score.py
