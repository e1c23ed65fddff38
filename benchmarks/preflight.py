"""What the sandbox check costs each run: the preflight (a known-correct and a known-wrong
program through the real executor) for Python and C++ at each isolation level that works here,
median of five; C++ compiles both canaries each time (a fresh executor per run, as in a job).

    python -m benchmarks.preflight
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.execution.base import ExecutionLimits  # noqa: E402
from seidr.execution.cpp import CppExecutor  # noqa: E402
from seidr.execution.preflight import preflight  # noqa: E402
from seidr.execution.python import PythonExecutor  # noqa: E402
from seidr.execution.sandbox import Sandbox, bwrap_works  # noqa: E402

RUNS = 5


async def measure(language: str, isolation: str) -> tuple[str, float]:
    times = []
    for _ in range(RUNS):
        sandbox = Sandbox(ExecutionLimits(), isolation=isolation)
        executor = PythonExecutor(sandbox) if language == "python" else CppExecutor(sandbox)
        times.append(await preflight(executor))
    return sandbox.python, statistics.median(times)


def main() -> None:
    logging.getLogger("seidr").setLevel(logging.ERROR)  # the interpreter choice is printed below
    levels = ["process"] + (["namespace"] if bwrap_works() else [])
    for language in ("python", "cpp"):
        for isolation in levels:
            python, seconds = asyncio.run(measure(language, isolation))
            print(f"{language:6} {isolation:9} preflight median {seconds:.3f} s over {RUNS} runs"
                  + (f" (python {python})" if language == "python" else ""))


if __name__ == "__main__":
    main()
