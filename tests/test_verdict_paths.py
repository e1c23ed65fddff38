"""What the Evaluator hands the executor for a function task (the prompt's preamble before the code,
the mode, the entry point), and how a function test's failure is told apart: its own assert failing
is a wrong answer, any other exception (or a compiled test's crash) is the program's error."""

from __future__ import annotations

import asyncio
from typing import Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.scoring import FAILED_ASSERTION, judge
from seidr.execution.verdicts import Evaluator
from seidr.problem import Example, Problem

TESTS = (Example("assert f(1) == 2\n"), Example("assert f(2) == 4\n"))


class Recording:
    language = "python"

    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def run(self, code: str, tests: Sequence[Example], mode: str, **kwargs) -> list[TestOutcome]:
        self.calls.append({"code": code, "tests": list(tests), "mode": mode, **kwargs})
        return [TestOutcome("pass", 1.0) for _ in tests]


def test_a_function_task_runs_its_preamble_before_the_code_with_its_entry_point():
    problem = Problem(name="p", dataset="d", description="", mode="function", valid=TESTS, test=(),
                      entry_point="f", signature="def f(x):\n", preamble="import math\n")
    executor = Recording()
    evaluator = Evaluator(executor, problem, workers=1)
    asyncio.run(evaluator.validation("def f(x):\n    return 2 * x\n"))
    assert executor.calls == [{"code": "import math\ndef f(x):\n    return 2 * x\n", "tests": list(TESTS),
                               "mode": "function", "entry_point": "f", "preamble": "import math\n",
                               "signature": "def f(x):\n"}]
    # the same code again is not run again, whatever its preamble made of it
    asyncio.run(evaluator.validation("def f(x):\n    return 2 * x\n"))
    assert len(executor.calls) == 1 and evaluator.cached_verdicts == 2


def test_without_a_preamble_the_code_runs_as_it_is():
    problem = Problem(name="p", dataset="d", description="", mode="stdio", valid=(Example("1\n", "1\n"),), test=())
    executor = Recording()
    asyncio.run(Evaluator(executor, problem, workers=1).validation("print(input())\n"))
    assert executor.calls[0]["code"] == "print(input())\n" and executor.calls[0]["mode"] == "stdio"


def test_a_function_test_that_fails_its_own_assert_is_a_wrong_answer():
    python = {"status": "exception", "exc_type": "AssertionError", "error": "AssertionError\n"}
    compiled = {"status": "exception", "error": f"some output\n{FAILED_ASSERTION}f(1) == 2\n"}
    for raw in (python, compiled):
        outcome = judge("function", TESTS[0], raw)
        assert (outcome.status, outcome.score) == ("wrong", 0.0), raw


def test_any_other_function_test_failure_is_the_programs_error():
    crashes = [{"status": "exception", "exc_type": "ZeroDivisionError", "error": "ZeroDivisionError\n"},
               # a compiled test's own report only counts as its last line of stderr
               {"status": "exception", "error": f"{FAILED_ASSERTION}f(1) == 2\nSegmentation fault\n"},
               {"status": "exception", "error": "Segmentation fault\n"},
               {"status": "exception"}]
    for raw in crashes:
        assert judge("function", TESTS[0], raw).status == "error", raw
    # in stdin/stdout mode an exception is always the program's error
    assert judge("stdio", Example("1\n", "2\n"), {"status": "exception", "exc_type": "AssertionError"}).status == "error"
