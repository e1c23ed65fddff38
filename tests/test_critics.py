"""A user's critic (`dev.develop(critic=...)`) scores outputs where several are right: a score below
1.0 is partial credit and never a pass, and a test the program did not run to the end (a crash, a
timeout, an output flood) keeps its verdict whatever the critic would say."""

from __future__ import annotations

import asyncio
from typing import Sequence

import pytest

from seidr import dev
from seidr.execution.base import TestOutcome
from seidr.execution.verdicts import Evaluator
from seidr.problem import Example, Problem
from tests.scripted import ScriptedBackend
from tests.test_dev_api import NO_CACHE

EXAMPLES = [("4", "2"), ("9", "3"), ("15", "3")]


def develop_with(program: str, critic, *overrides: str, **search):
    backend = ScriptedBackend(lambda step, messages, index: f"```python\n{program}```")
    return dev.develop("Print a proper divisor of n.", examples=EXAMPLES, model=backend, critic=critic,
                       overrides=[*NO_CACHE, *overrides], **search), backend


@pytest.mark.parametrize("partial", [0.5, 0.999999])
def test_a_score_below_one_is_partial_credit_never_a_pass(tmp_path, partial):
    result, backend = develop_with("print(int(input()) // 2)\n", lambda i, e, a: partial,
                                   max_programs=2, drafts_per_prompt=2, output_dir=tmp_path)
    assert not result.solved and result.result["stopped"] == "budget"
    for program in result.programs:
        assert [o.status for o in program.outcomes] == ["wrong"] * 3, program.outcomes
        assert program.scores == [partial] * 3 and not program.solved
    assert result.val_score == pytest.approx(partial)


def test_a_critic_never_turns_a_crash_or_a_timeout_into_a_pass(tmp_path):
    judged: list[tuple[str, str]] = []

    def generous(test_input: str, expected: str, actual: str) -> float:
        judged.append((test_input, actual))
        return 1.0

    # 4: prints 2 and ends; 9: crashes after printing; 15: prints, then runs past the time limit
    program = ("import time\nn = int(input())\nprint(n // 2)\n"
               "if n == 9:\n    raise SystemExit(1 / 0)\nif n == 15:\n    time.sleep(30)\n")
    result, _ = develop_with(program, generous, "execution.limits.test_timeout_s=0.5",
                             "execution.isolation=process", max_programs=1, drafts_per_prompt=1,
                             output_dir=tmp_path)
    [made] = result.programs
    assert [o.status for o in made.outcomes] == ["pass", "error", "timeout"]
    assert made.scores == [1.0, 0.0, 0.0] and not result.solved
    # only the test that ran to the end (on validation, and again when the best is scored on the tests)
    assert {test_input for test_input, _ in judged} == {"4\n"}


class CannedExecutor:
    """An executor whose verdicts are given per test input (the critic's side of the Evaluator)."""

    language = "python"

    def __init__(self, outcomes: dict[str, TestOutcome]) -> None:
        self.outcomes = outcomes

    async def run(self, code: str, tests: Sequence[Example], mode: str, **_: object) -> list[TestOutcome]:
        return [self.outcomes[test.input] for test in tests]


def test_only_outputs_of_programs_that_ran_to_the_end_reach_the_critic():
    kept = {status: TestOutcome(status, 0.0, actual="partial out", error="why") for status in
            ("error", "timeout", "output_limit", "memory", "syntax", "compile")}
    canned = {**kept, "right": TestOutcome("wrong", 0.0, actual="2\n"), "exact": TestOutcome("pass", 1.0, actual="1\n")}
    tests = tuple(Example(name, "expected\n") for name in canned)
    problem = Problem(name="p", dataset="api", description="", mode="stdio", valid=tests, test=())
    judged = []

    def critic(test_input: str, expected: str, actual: str) -> float:
        judged.append(test_input)
        assert expected == "expected\n"  # the test's own expected output, as given
        return {"right": 1.0, "exact": 0.25}[test_input]

    evaluator = Evaluator(CannedExecutor(canned), problem, workers=1, critic=critic)
    outcomes = dict(zip(canned, asyncio.run(evaluator.validation("code"))))
    assert judged == ["right", "exact"]
    for status, outcome in kept.items():
        assert outcomes[status] == outcome  # untouched: status, score, output and error
    assert outcomes["right"] == TestOutcome("pass", 1.0, actual="2\n")
    # the critic's word replaces the exact comparison both ways: an exact match it scores 0.25 fails
    assert outcomes["exact"] == TestOutcome("wrong", 0.25, actual="1\n")


@pytest.mark.parametrize("said, status, score", [(1.7, "pass", 1.0), (-3, "wrong", 0.0), (True, "pass", 1.0)])
def test_a_critic_score_out_of_range_is_clamped(said, status, score):
    tests = (Example("x", "y"),)
    problem = Problem(name="p", dataset="api", description="", mode="stdio", valid=tests, test=())
    evaluator = Evaluator(CannedExecutor({"x": TestOutcome("wrong", 0.0, actual="z")}), problem, workers=1,
                          critic=lambda i, e, a: said)
    [outcome] = asyncio.run(evaluator.validation("code"))
    assert (outcome.status, outcome.score) == (status, score)
