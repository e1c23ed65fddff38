"""Running Python programs: one sandboxed interpreter per program runs it over all its tests."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from seidr.execution.base import ExecutionLimits, TestOutcome
from seidr.execution.sandbox import RunUsers, clean_env, kill_everything, private_dir
from seidr.execution.scoring import score_stdout
from seidr.problem import Example, TestMode

HARNESS = Path(__file__).with_name("harness.py")
SHOWN_CHARS = 2000  # of a program's output kept for the record and for prompts


class PythonExecutor:
    """Scores Python programs. `run` never raises for anything the program does: every way a
    program can fail becomes a verdict on the tests it affected."""

    def __init__(self, limits: ExecutionLimits | None = None, python: str = sys.executable,
                 max_parallel: int = 64) -> None:
        self.limits = limits or ExecutionLimits()
        self.python = python
        self._users = RunUsers(max_parallel)

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode) -> list[TestOutcome]:
        """One outcome per test, in order."""
        if not tests:
            return []
        raw = await self._run_harness(code, [t.input for t in tests], mode)
        return [judge(mode, test, raw.get(index)) for index, test in enumerate(tests)]

    async def _run_harness(self, code: str, inputs: list[str], mode: TestMode) -> dict[int, dict[str, Any]]:
        limits = self.limits
        results: dict[int, dict[str, Any]] = {}
        async with self._users.take() as uid, private_dir(uid) as workdir:
            settings = {
                "memory_mb": limits.memory_mb, "max_file_bytes": limits.max_file_bytes,
                "max_processes": limits.max_processes, "total_cpu_s": max(1, int(limits.total_timeout_s)),
                "test_cpu_s": limits.test_cpu_s, "test_timeout_s": limits.test_timeout_s,
                "max_output_bytes": limits.max_output_bytes, "uid": uid,
            }
            process = await asyncio.create_subprocess_exec(
                self.python, "-I", "-B", str(HARNESS), json.dumps(settings), cwd=workdir, env=clean_env(workdir),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True, limit=limits.max_output_bytes * 4 + 65536,
            )
            deadline = time.monotonic() + limits.total_timeout_s
            try:
                await asyncio.wait_for(self._talk(process, code, inputs, mode, results), limits.total_timeout_s)
            except (asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
                pass  # whatever did not report is judged below (timeout or crash)
            finally:
                await kill_everything(process, uid)
            if time.monotonic() >= deadline:
                for index in range(len(inputs)):
                    results.setdefault(index, {"status": "timeout",
                                               "error": f"the program ran out of its {limits.total_timeout_s} s in all"})
        return results

    @staticmethod
    async def _talk(process: asyncio.subprocess.Process, code: str, inputs: list[str], mode: TestMode,
                    results: dict[int, dict[str, Any]]) -> None:
        assert process.stdin and process.stdout
        process.stdin.write(json.dumps({"code": code, "mode": mode, "tests": inputs}).encode())
        await process.stdin.drain()
        process.stdin.close()
        while line := await process.stdout.readline():
            result = json.loads(line)
            index = result.get("i")
            if isinstance(index, int) and 0 <= index < len(inputs):
                results[index] = result


def judge(mode: TestMode, test: Example, raw: dict[str, Any] | None) -> TestOutcome:
    """Turn what the harness saw into a verdict with its partial-credit score."""
    if raw is None:
        return TestOutcome("error", 0.0, error="the sandbox stopped before this test ran")
    status, error = raw.get("status"), str(raw.get("error", ""))
    stdout = str(raw.get("stdout", ""))
    shown = stdout[:SHOWN_CHARS]
    if status == "ok":
        if mode == "function":
            return TestOutcome("pass", 1.0, actual=shown)
        score, passed = score_stdout(test.output, stdout)
        return TestOutcome("pass" if passed else "wrong", score, actual=shown, error=str(raw.get("stderr", "")))
    if status == "exception":
        if mode == "function" and raw.get("exc_type") == "AssertionError":
            return TestOutcome("wrong", 0.0, actual=shown, error=error)
        return TestOutcome("error", 0.0, actual=shown, error=error)
    if status in ("timeout", "output_limit", "memory", "syntax"):
        return TestOutcome(status, 0.0, actual=shown, error=error)
    return TestOutcome("error", 0.0, actual=shown, error=error or f"unexpected sandbox status {status!r}")
