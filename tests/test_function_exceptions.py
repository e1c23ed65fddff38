"""Exceptions and values across the boundary of a Python function task, on a task of the user's
own (a JSON-lines file) whose asserts expect exceptions. The program runs in its own process and
answers over a pipe; the asserts run in seidr's harness:

- an exception the program raises reaches the test as the same built-in type with its arguments,
  as in plain Python (a class of the program's own arrives as the built-in it derives from);
- a reply the harness cannot read (malformed, too deep, too large) is the program's failure, which
  no `except` in the test can catch;
- integers of any size cross both ways;
- what a program says in an error is cut before it leaves the sandbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from seidr.data.jsonl import JsonlDataset
from seidr.execution.base import ExecutionLimits
from seidr.execution.harness import MAX_ERROR_CHARS
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, _kept, bwrap_works
from seidr.problem import Example, Problem

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=30)

TASK = {
    "name": "isqrt",
    "signature": 'def isqrt(n):\n    """The integer square root of n; ValueError("negative input") when n < 0."""\n',
    "asserts": [
        "assert isqrt(16) == 4",
        "try:\n    isqrt(-1)\nexcept ValueError as error:\n    assert str(error) == 'negative input', str(error)\n"
        "else:\n    assert False, 'no ValueError'",
        "try:\n    isqrt(-4)\nexcept Exception:\n    pass\nelse:\n    assert False, 'no exception'",
        "try:\n    isqrt(-9)\nexcept BaseException:\n    pass\nelse:\n    assert False, 'no exception'",
    ],
    "hidden_asserts": [
        # both ways past the 4,300-digit limit of Python's int <-> str conversion
        "assert isqrt(10 ** 10000) == 10 ** 5000",
        "try:\n    isqrt('16')\nexcept TypeError as error:\n    assert error.args == ('an integer is needed',)\n"
        "else:\n    assert False, 'no TypeError'",
    ],
}

HONEST = (
    "import math\n"
    "class NegativeInput(ValueError):\n"
    "    pass\n"
    "def isqrt(n):\n"
    "    if not isinstance(n, int):\n"
    "        raise TypeError('an integer is needed')\n"
    "    if n < 0:\n"
    "        raise NegativeInput('negative input')\n"
    "    return math.isqrt(n)\n")


def forged_reply(line: bytes) -> str:
    """A program that writes `line` as its answer on every pipe it holds, then ends."""
    return ("import os, stat\n"
            "def isqrt(n):\n"
            "    for fd in range(3, 32):\n"
            "        try:\n"
            "            if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
            f"                os.write(fd, {line!r})\n"
            "        except OSError:\n"
            "            pass\n"
            "    os._exit(0)\n")


# Replies whose decoding raised an ordinary exception inside the test's own code, where
# `except ValueError` / `except Exception` caught it and passed the test
HOSTILE = {
    "reply with a malformed bytes value": forged_reply(b'{"value": {"bytes": "zz"}}\n'),
    "reply nested 100,000 deep": forged_reply(b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
    "reply with a 5,000-digit decimal": forged_reply(b'{"value": ' + b"9" * 5000 + b"}\n"),
    "reply with an unhashable dict key": forged_reply(b'{"value": {"dict": [[[1], 2]]}}\n'),
    "exception reply with arguments that are not data": forged_reply(
        b'{"raised": "x", "builtin": "ValueError", "args": {"set": [[1]]}}\n'),
    "reply that is not JSON": forged_reply(b"ValueError\n"),
    "reply past the size limit": forged_reply(b"[" * (9 * 1024 * 1024)),
    "raise SystemExit": "def isqrt(n):\n    raise SystemExit(0)\n",
    "no function at all": "x = 1\n",
}


def load_task_problem(folder: Path) -> Problem:
    """TASK as the product reads it from a JSON-lines file in `folder` (also used by
    benchmarks/exploit_table.py)."""
    path = folder / "tasks.jsonl"
    path.write_text(json.dumps(TASK) + "\n", encoding="utf-8")
    return JsonlDataset(path).load("isqrt", seed=0)


@pytest.fixture(scope="module")
def problem(tmp_path_factory) -> Problem:
    return load_task_problem(tmp_path_factory.mktemp("tasks"))


def executor(isolation: str) -> PythonExecutor:
    if isolation == "namespace" and not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")
    return PythonExecutor(Sandbox(LIMITS, isolation=isolation))


def outcomes(problem: Problem, code: str, isolation: str):
    tests = list(problem.valid) + list(problem.test)
    return asyncio.run(executor(isolation).run(code, tests, "function", entry_point=problem.entry_point,
                                               preamble=problem.preamble))


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_an_honest_program_passes_tests_that_expect_its_exceptions(problem, isolation):
    results = outcomes(problem, HONEST, isolation)
    assert [o.status for o in results] == ["pass"] * 6, [(o.status, o.error) for o in results]


@pytest.mark.parametrize("isolation", ["namespace", "process"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_reply_that_is_not_an_answer_fails_even_a_test_that_catches_everything(problem, name, isolation):
    results = outcomes(problem, HOSTILE[name], isolation)
    assert results and "pass" not in [o.status for o in results], (name, [(o.status, o.error) for o in results])


def test_an_exception_of_the_wrong_type_is_not_caught(problem):
    """`except ValueError` in a test does not catch a KeyError, nor an exception class of the
    program's own that derives from Exception only: it arrives as Exception."""
    code = ("class Invalid(Exception):\n    pass\n"
            "def isqrt(n):\n    if n == -1:\n        raise KeyError('negative input')\n    raise Invalid('negative input')\n")
    statuses = [o.status for o in outcomes(problem, code, "process")]
    # isqrt(-1) expects ValueError (gets KeyError); isqrt(-4) and isqrt(-9) expect any exception (get one)
    assert statuses[1:4] == ["error", "pass", "pass"], statuses


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_an_uncaught_exception_of_the_program_shows_the_programs_traceback(problem, isolation):
    code = "def isqrt(n):\n    return helper(n)\ndef helper(n):\n    raise ZeroDivisionError('no root here')\n"
    first = outcomes(problem, code, isolation)[0]
    assert first.status == "error" and 'File "<program>", line 4' in first.error
    assert "ZeroDivisionError: no root here" in first.error


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_huge_error_message_is_cut_where_it_leaves_the_sandbox(problem, isolation):
    code = "def isqrt(n):\n    raise ValueError('x' * 600_000)\n"
    results = outcomes(problem, code, isolation)
    assert results[0].status == "error"
    assert all(len(o.error) <= MAX_ERROR_CHARS + 100 for o in results), [len(o.error) for o in results]
    assert "characters cut" in results[0].error
    stdio = "raise RuntimeError('y' * 600_000)\n"
    [outcome] = asyncio.run(executor(isolation).run(stdio, [Example("1\n", "2\n")], "stdio"))
    assert outcome.status == "error" and len(outcome.error) <= MAX_ERROR_CHARS + 100
    assert "characters cut" in outcome.error and outcome.error.rstrip().endswith("y")


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_result_line_a_program_forges_in_a_stdio_run_is_cut_too(isolation):
    """In a stdin/stdout run the program shares its process with the harness's worker, so it can
    write result lines of its own: seidr cuts their text again as it reads them."""
    code = ("import os, stat, json\n"
            "line = json.dumps({'i': 0, 'status': 'exception', 'error': 'z' * 500_000, 'k' * 1000: 'v'})\n"
            "for fd in range(3, 32):\n"
            "    try:\n"
            "        if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
            "            os.write(fd, line.encode() + b'\\n')\n"
            "    except OSError:\n"
            "        pass\n"
            "os._exit(0)\n")
    [outcome] = asyncio.run(executor(isolation).run(code, [Example("1\n", "2\n")], "stdio"))
    assert outcome.status == "error" and len(outcome.error) <= MAX_ERROR_CHARS + 100, len(outcome.error)


def test_what_seidr_keeps_of_a_result_line_is_bounded():
    kept = _kept({"i": 3, "status": "ok", "stdout": "a" * 100_000, "error": "b" * 100_000, "x" * 500: "c",
                  "nested": ["d" * 100_000]}, output_chars=1000)
    assert kept["i"] == 3 and kept["status"] == "ok" and set(kept) == {"i", "status", "stdout", "error"}
    assert len(kept["stdout"]) < 1100 and len(kept["error"]) < MAX_ERROR_CHARS + 100
    assert "characters cut" in kept["stdout"] and "characters cut" in kept["error"]


def test_a_compiler_message_says_it_was_cut():
    from seidr.execution.harness import trim_compiler

    long = "\n".join(f"error {k}: " + "q" * 500 for k in range(40))
    trimmed = trim_compiler(long)
    assert len(trimmed) < 1600 and trimmed.endswith("cut]")
    assert trim_compiler("error 1\n\nerror 2\n") == "error 1\nerror 2"



def test_the_harness_cuts_a_programs_error_before_it_is_sent():
    """The harness's own cut (seidr cuts again on reading): the sandbox's pipe never carries it."""
    from seidr.execution import harness

    class Invalid(ValueError):
        pass

    try:
        raise Invalid("x" * 600_000)
    except Invalid as error:
        caught = error
    assert len(harness.program_traceback(caught)) <= MAX_ERROR_CHARS + 100
    crossed = harness.crossing(caught)
    assert crossed["builtin"] == "ValueError" and len(crossed["args"][0]) <= MAX_ERROR_CHARS + 100


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_what_a_function_prints_is_cut_saying_so(problem, isolation):
    code = "def isqrt(n):\n    print('p' * 60_000)\n    return 4\n"
    first = outcomes(problem, code, isolation)[0]
    assert first.status == "pass" and "characters cut" in first.actual and len(first.actual) < 4200
