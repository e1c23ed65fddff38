"""One time budget per function-task program, in Python and C++: once a test times out, the
tests after it fail as timeouts without running (an endless loop used to cost the per-test limit
once per assert). Other failures (a wrong answer, an exception, a crash) still cost one test.

These tests assert statuses and count which tests ran (each call of the program prints a
line, kept as that test's output); they never measure time."""

from __future__ import annotations

import asyncio

import pytest

from seidr.execution.base import ExecutionLimits, TestOutcome
from seidr.execution.cpp import CppExecutor
from seidr.execution.harness import NOT_RUN
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example

LIMITS = ExecutionLimits(test_timeout_s=1, test_cpu_s=1, total_timeout_s=30, compile_timeout_s=60)
LEVELS = ["namespace", "process"]

# f(x) == x on every test; the program's own behaviour decides what happens at x == 0
PY_TESTS = [Example(f"assert f({x}) == {x}\n") for x in (1, 2, 0, 3, 4)]
PY_SLOW = {
    "a busy loop (CPU limit)": "    while x == 0:\n        pass\n",
    "a sleep (wall clock)": "    if x == 0:\n        import time\n        time.sleep(60)\n",
}


def sandbox(isolation: str) -> Sandbox:
    if isolation == "namespace" and not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")
    return Sandbox(LIMITS, isolation=isolation)


def python_run(isolation: str, code: str, tests: list[Example] = PY_TESTS) -> list[TestOutcome]:
    executor = PythonExecutor(sandbox(isolation))
    return asyncio.run(executor.run(code, tests, "function", entry_point="f"))


def ran(outcomes: list[TestOutcome]) -> int:
    """How many calls of the program printed their line (in Python, a killed call's print is lost)."""
    return sum("ran" in outcome.actual for outcome in outcomes)


@pytest.mark.parametrize("isolation", LEVELS)
@pytest.mark.parametrize("slow", sorted(PY_SLOW))
def test_python_tests_after_a_timeout_fail_without_running(isolation, slow):
    code = "def f(x):\n    print('ran', x)\n" + PY_SLOW[slow] + "    return x\n"
    outcomes = python_run(isolation, code)
    assert [o.status for o in outcomes] == ["pass", "pass", "timeout", "timeout", "timeout"], outcomes
    assert NOT_RUN not in outcomes[2].error
    assert [o.error for o in outcomes[3:]] == [NOT_RUN, NOT_RUN]
    assert ran(outcomes) == 2 and all(o.actual == "" for o in outcomes[3:])


@pytest.mark.parametrize("isolation", LEVELS)
def test_a_python_program_that_never_loads_times_out_once(isolation):
    outcomes = python_run(isolation, "while True:\n    pass\ndef f(x):\n    return x\n")
    assert [o.status for o in outcomes] == ["timeout"] * 5
    assert outcomes[0].error != NOT_RUN and [o.error for o in outcomes[1:]] == [NOT_RUN] * 4


def test_a_timeout_the_test_code_catches_still_ends_the_program():
    tests = [Example("try:\n    f(0)\nexcept BaseException:\n    pass\n"), Example("assert f(1) == 1\n")]
    code = "def f(x):\n    print('ran', x)\n    while x == 0:\n        pass\n    return x\n"
    outcomes = python_run("process", code, tests)
    assert [o.status for o in outcomes] == ["timeout", "timeout"] and outcomes[1].error == NOT_RUN
    assert ran(outcomes) == 0


@pytest.mark.parametrize("isolation", LEVELS)
def test_python_failures_other_than_timeouts_still_cost_one_test(isolation):
    code = ("import os\n"
            "def f(x):\n    print('ran', x)\n"
            "    if x == 2:\n        return -2\n"
            "    if x == 0:\n        raise ValueError('zero')\n"
            "    if x == 3:\n        os._exit(0)\n"
            "    return x\n")
    outcomes = python_run(isolation, code)
    assert [o.status for o in outcomes] == ["pass", "wrong", "error", "error", "pass"], outcomes
    assert ran(outcomes) == 4  # all but the call that ended its process


# ---- C++ (HumanEval-X style: each test a file with a main() ending in an assert) ----

CPP_HEADER = "#include <cassert>\n#include <cstdio>\n"
OTHER_HEADER = CPP_HEADER + "static bool same(int a, int b) { return a == b; }\n"
CPP_TESTS = [Example(CPP_HEADER + f"int main() {{ assert(f({x}) == {x}); }}\n") for x in (1, 2, 0, 3, 4)]
CPP_PRINT = '#include <cstdio>\nint f(int x) {\n    printf("ran %d\\n", x);\n'


def cpp_run(isolation: str, code: str, tests: list[Example] = CPP_TESTS) -> tuple[list[TestOutcome], list[dict]]:
    """Outcomes, and the jobs that ran a binary (not the compiles)."""
    executor = CppExecutor(sandbox(isolation))
    jobs: list[dict] = []
    run = executor.sandbox.run

    async def recording(job, *args, **kwargs):
        jobs.append(job)
        return await run(job, *args, **kwargs)

    executor.sandbox.run = recording  # type: ignore[method-assign]
    outcomes = asyncio.run(executor.run(code, tests, "function"))
    return outcomes, [job for job in jobs if job.get("run") is not False]


@pytest.mark.parametrize("isolation", LEVELS)
def test_cpp_tests_after_a_timeout_fail_without_running(isolation):
    code = CPP_PRINT + "    for (volatile int spin = 0; x == 0; spin = spin + 1) {}\n    return x;\n}\n"
    outcomes, runs = cpp_run(isolation, code)
    assert [o.status for o in outcomes] == ["pass", "pass", "timeout", "timeout", "timeout"], outcomes
    assert NOT_RUN not in outcomes[2].error and [o.error for o in outcomes[3:]] == [NOT_RUN, NOT_RUN]
    assert ran(outcomes) == 3 and outcomes[2].actual == "ran 0\n"  # the looping test's output is kept
    assert all(o.actual == "" for o in outcomes[3:]) and len(runs) == 1


def test_cpp_tests_of_a_later_binary_are_not_run_after_a_timeout():
    """Tests with other shared code go into a binary of their own; after a timeout it is
    neither compiled nor run."""
    tests = CPP_TESTS[:3] + [Example(OTHER_HEADER + f"int main() {{ assert(same(f({x}), {x})); }}\n") for x in (5, 6)]
    code = CPP_PRINT + "    for (volatile int spin = 0; x == 0; spin = spin + 1) {}\n    return x;\n}\n"
    outcomes, runs = cpp_run("process", code, tests)
    assert [o.status for o in outcomes] == ["pass", "pass", "timeout", "timeout", "timeout"], outcomes
    assert [o.error for o in outcomes[3:]] == [NOT_RUN, NOT_RUN]
    assert [len(job["tests"]) for job in runs] == [3]


@pytest.mark.parametrize("isolation", LEVELS)
def test_cpp_failures_other_than_timeouts_still_cost_one_test(isolation):
    code = (CPP_PRINT + "    fflush(stdout);\n"
            "    if (x == 2) return -2;\n    if (x == 0) { int *p = nullptr; return *p; }\n    return x;\n}\n")
    outcomes, _ = cpp_run(isolation, code)
    assert [o.status for o in outcomes] == ["pass", "wrong", "error", "pass", "pass"], outcomes
    assert ran(outcomes) == 5
