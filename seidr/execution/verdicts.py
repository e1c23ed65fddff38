"""Where a verdict is decided, in one place: a program's code goes to the sandboxed executor
(seidr/execution/python.py, cpp.py, whose harness compares a function task's returned values
outside the program's process), the outputs it printed are compared here or by the executor's
scoring (seidr/execution/scoring.py), a user's critic judges stdio outputs in seidr's own
process, and verdicts are remembered per (code, test) for the run. Nothing a program does can
reach this code: it runs in seidr's process, after the program's sandbox is gone."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import Any, Callable, Sequence

from seidr.execution.base import TestOutcome
from seidr.problem import Example, Problem

# A user's judge of one stdio test: (input, expected output, actual output) -> score in [0, 1].
Critic = Callable[[str, str, str], float]


class Evaluator:
    """Scores code on a problem's tests, with at most `workers` programs running at once.

    A critic, when given, replaces the line-by-line comparison for tests whose program ran to
    the end. It runs here, in seidr's process, on the captured output: never in the sandbox,
    so the program cannot reach it."""

    def __init__(self, executor: Any, problem: Problem, workers: int, critic: Critic | None = None) -> None:
        self.executor = executor
        self.problem = problem
        self.critic = critic
        self._slots = asyncio.Semaphore(max(1, workers))
        # verdicts by (code, test): a repair identical to an earlier program costs nothing
        self._verdicts: dict[tuple[str, Example], TestOutcome] = {}
        self._running: dict[str, asyncio.Future[None]] = {}  # code being scored, by digest
        self.cached_verdicts = 0

    async def run(self, code: str, tests: Sequence[Example]) -> list[TestOutcome]:
        source = self.problem.preamble + code if self.problem.preamble else code
        digest = self._digest(code)
        # the same code being scored right now (identical drafts arrive together): wait for it
        # rather than run it twice, then run only what it did not cover
        while (running := self._running.get(digest)) is not None:
            await asyncio.shield(running)
        missing = [test for test in dict.fromkeys(tests) if (digest, test) not in self._verdicts]
        self.cached_verdicts += len(tests) - len(missing)
        if missing:
            done = self._running[digest] = asyncio.get_running_loop().create_future()
            try:
                async with self._slots:
                    outcomes = await self.executor.run(source, missing, self.problem.mode,
                                                       entry_point=self.problem.entry_point,
                                                       preamble=self.problem.preamble,
                                                       signature=self.problem.signature)
                for test, outcome in zip(missing, outcomes):
                    self._verdicts[(digest, test)] = outcome
            finally:
                del self._running[digest]
                done.set_result(None)
        outcomes = [self._verdicts[(digest, test)] for test in tests]
        if self.critic is None or self.problem.mode != "stdio":
            return outcomes
        return [self._judge(test, outcome) for test, outcome in zip(tests, outcomes)]

    def remember(self, code: str, tests: Sequence[Example], outcomes: Sequence[TestOutcome]) -> None:
        """Verdicts known from elsewhere (an earlier run of the job), so `run` need not run them."""
        digest = self._digest(code)
        for test, outcome in zip(tests, outcomes):
            self._verdicts[(digest, test)] = outcome

    def _digest(self, code: str) -> str:
        source = self.problem.preamble + code if self.problem.preamble else code
        return hashlib.sha256(source.encode()).hexdigest()

    def _judge(self, test: Example, outcome: TestOutcome) -> TestOutcome:
        if outcome.status not in ("pass", "wrong"):
            return outcome
        score = min(1.0, max(0.0, float(self.critic(test.input, test.output, outcome.actual))))
        return replace(outcome, status="pass" if score == 1.0 else "wrong", score=score)

    async def validation(self, code: str) -> list[TestOutcome]:
        return await self.run(code, self.problem.valid)
