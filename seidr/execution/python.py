"""Running Python programs: one sandboxed interpreter per program runs it over all its tests."""

from __future__ import annotations

from typing import Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.sandbox import Sandbox
from seidr.execution.scoring import judge
from seidr.problem import Example, TestMode


class PythonExecutor:
    """Scores Python programs. `run` never raises for anything the program does: every way a
    program can fail becomes a verdict on the tests it affected."""

    language = "python"

    def __init__(self, sandbox: Sandbox, float_tolerance: float | None = None) -> None:
        self.sandbox = sandbox
        self.float_tolerance = float_tolerance

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode) -> list[TestOutcome]:
        """One outcome per test, in order."""
        if not tests:
            return []
        raw, _ = await self.sandbox.run({"mode": mode, "code": code, "tests": [t.input for t in tests]})
        return [judge(mode, test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]
