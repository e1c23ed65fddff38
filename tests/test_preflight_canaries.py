"""The preflight's canaries, each of its own: a sandbox that passes everything fails on the known-wrong
stdin/stdout canary and on the known-wrong function-task canary (Python and C++ alike), one that
fails everything on the known-correct ones; and a working machine passes all of them."""

from __future__ import annotations

import asyncio
from typing import Sequence

import pytest

from seidr.errors import SandboxBroken
from seidr.execution.base import ExecutionLimits, TestOutcome
from seidr.execution.preflight import FUNCTION_CANARIES, preflight
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox
from seidr.problem import Example

LIMITS = ExecutionLimits(test_timeout_s=5, total_timeout_s=30)


class Rigged:
    """An executor whose every verdict in `rigged_mode` is `status`; the other mode runs for real."""

    def __init__(self, real: PythonExecutor, rigged_mode: str, status: str) -> None:
        self.real, self.rigged_mode, self.status = real, rigged_mode, status
        self.language, self.sandbox = real.language, real.sandbox
        self.calls: list[tuple[str, str]] = []  # (mode, code)

    async def run(self, code: str, tests: Sequence[Example], mode: str, **kwargs) -> list[TestOutcome]:
        self.calls.append((mode, code))
        if mode == self.rigged_mode:
            return [TestOutcome(self.status, 1.0 if self.status == "pass" else 0.0, error="rigged") for _ in tests]
        return await self.real.run(code, tests, mode, **kwargs)


@pytest.fixture(scope="module")
def python_executor() -> PythonExecutor:
    return PythonExecutor(Sandbox(LIMITS, isolation="process"))


def test_a_working_machine_passes_every_python_canary(python_executor):
    rigged = Rigged(python_executor, "none", "pass")  # nothing rigged: records what ran
    asyncio.run(preflight(rigged, modes=("stdio", "function")))
    assert [mode for mode, _ in rigged.calls] == ["stdio", "stdio", "function", "function"]
    right, wrong = FUNCTION_CANARIES["python"]
    assert [code.endswith(right) for _, code in rigged.calls[2:]] == [True, False]
    assert rigged.calls[3][1].endswith(wrong)


@pytest.mark.parametrize("mode, task", [("stdio", "stdin/stdout"), ("function", "function-task")])
def test_a_sandbox_that_passes_everything_fails_the_known_wrong_canary(python_executor, mode, task):
    rigged = Rigged(python_executor, mode, "pass")
    with pytest.raises(SandboxBroken, match=f"a known-wrong python {task} program got 'pass', not 'wrong'"):
        asyncio.run(preflight(rigged, modes=("stdio", "function")))


@pytest.mark.parametrize("mode, task", [("stdio", "stdin/stdout"), ("function", "function-task")])
def test_a_sandbox_that_fails_everything_fails_the_known_correct_canary(python_executor, mode, task):
    rigged = Rigged(python_executor, mode, "error")
    with pytest.raises(SandboxBroken, match=f"a known-correct python {task} program got 'error', not 'pass'"):
        asyncio.run(preflight(rigged, modes=("stdio", "function")))


def test_a_stdio_run_checks_no_function_canary(python_executor):
    rigged = Rigged(python_executor, "function", "error")  # a broken function protocol does not matter
    asyncio.run(preflight(rigged, modes=("stdio",)))
    assert {mode for mode, _ in rigged.calls} == {"stdio"}


def test_a_function_harness_that_lost_the_preamble_is_caught(python_executor):
    """The Python function protocol broken where stdin/stdout still works: the program's code
    reaches the sandbox without the prompt's preamble (its imports)."""

    class DropsPreamble(Rigged):
        async def run(self, code, tests, mode, **kwargs):
            if mode == "function":
                code = code.replace(kwargs.get("preamble") or "\0", "")
            return await self.real.run(code, tests, mode, **kwargs)

    with pytest.raises(SandboxBroken, match="known-correct python function-task program got 'error'.*List"):
        asyncio.run(preflight(DropsPreamble(python_executor, "none", "pass"), modes=("stdio", "function")))
