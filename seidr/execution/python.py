"""Running Python programs: one sandboxed interpreter per program runs it over all its tests."""

from __future__ import annotations

from typing import Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.sandbox import HARNESS_SOURCE, Sandbox
from seidr.execution.scoring import judge
from seidr.problem import Example, TestMode


class PythonExecutor:
    """Scores Python programs. `run` never raises for anything the program does: every way a
    program can fail becomes a verdict on the tests it affected."""

    language = "python"

    def __init__(self, sandbox: Sandbox, float_tolerance: float | None = None) -> None:
        self.sandbox = sandbox
        self.float_tolerance = float_tolerance

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode, *, entry_point: str | None = None,
                  preamble: str = "", signature: str | None = None) -> list[TestOutcome]:
        """One outcome per test, in order. Function tasks name their `entry_point` (the function
        the tests call) and may give the `preamble` the tests rely on (the prompt's imports and
        helpers): the tests run outside the program's process, with only those. (`signature` is
        for the C++ executor's sake: here the preamble already holds the prompt's helpers.)"""
        if not tests:
            return []
        job = {"mode": mode, "code": code, "tests": [t.input for t in tests]}
        if mode == "function":
            if not entry_point:
                raise ValueError("function tasks need the name of the function their tests call")
            job.update(entry_point=entry_point, preamble=preamble, harness=HARNESS_SOURCE)
        raw, _ = await self.sandbox.run(job)
        return [judge(mode, test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]
