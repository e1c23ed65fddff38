"""What judging function tasks costs: the canonical solutions of HumanEval/0-39 (175 tests) through
the real executor at each isolation level that works here, median of three passes. Each program
gets an interpreter of its own (the tests run in the supervisor, outside the program's reach), so
this is mostly one interpreter start per program.

    python -m benchmarks.function_tasks
    python -m benchmarks.function_tasks --language cpp --passes 1 --again   # HumanEval-X CPP/0-39

For C++ each pass has a fresh binary cache, so each problem's first program pays every compile:
seidr's checker and the server's object, and the program linked with the server. `--again` times a
second program of each problem too, which finds the first two compiled (as every program of a
search after its first does)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.data.humaneval import HumanEvalDataset  # noqa: E402
from seidr.execution.base import ExecutionLimits  # noqa: E402
from seidr.execution.cpp import CppExecutor  # noqa: E402
from seidr.execution.python import PythonExecutor  # noqa: E402
from seidr.execution.sandbox import Sandbox, bwrap_works  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402

PROBLEMS = 40
PASSES = 3


async def one_pass(executor: PythonExecutor | CppExecutor, jobs: list, again: bool) -> tuple[float, float, int, int]:
    """(seconds for each problem's first program, seconds for a second one, tests, passed): the
    second is the same solution with a comment added, a new program whose compiled test side (C++)
    is already cached, as it is for every program of a search after its first."""
    first = second = 0.0
    tests = passed = 0
    for problem, code in jobs:
        cases = list(problem.valid) + list(problem.test)
        for variant in range(2 if again else 1):
            started = time.perf_counter()
            outcomes = await executor.run(problem.preamble + code + ("\n// the same, again\n" if variant else ""),
                                          cases, "function", entry_point=problem.entry_point,
                                          preamble=problem.preamble, signature=problem.signature)
            if variant:
                second += time.perf_counter() - started
            else:
                first += time.perf_counter() - started
                tests += len(cases)
                passed += sum(o.passed for o in outcomes)
    return first, second, tests, passed


def jobs_for(language: str) -> list:
    """(problem, canonical program) for the first PROBLEMS problems, every test held out or not."""
    folder = find_data_dir() or Path("data")
    path = folder / "humaneval" / "HumanEval.jsonl.gz"
    records_path = path if language == "python" else folder / "humaneval" / "humaneval_cpp.jsonl.gz"
    with gzip.open(records_path, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines][:PROBLEMS]
    dataset = HumanEvalDataset(path) if language == "python" else \
        HumanEvalDataset(path, language="cpp", cpp_path=records_path)
    return [(dataset.load(r["task_id"], seed=0, valid_examples=1000, test_examples=1000, prompt_examples=1),
             r["prompt"] + r["canonical_solution"]) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", choices=["python", "cpp"], default="python")
    parser.add_argument("--passes", type=int, default=PASSES, help="passes per level (the median is printed)")
    parser.add_argument("--again", action="store_true", help="also time a second program of each problem")
    args = parser.parse_args()
    logging.getLogger("seidr").setLevel(logging.ERROR)
    jobs = jobs_for(args.language)
    for isolation in ["process"] + (["namespace"] if bwrap_works() else []):
        def executor() -> PythonExecutor | CppExecutor:
            sandbox = Sandbox(ExecutionLimits(), isolation=isolation)
            return PythonExecutor(sandbox) if args.language == "python" else CppExecutor(sandbox)
        runs = [asyncio.run(one_pass(executor(), jobs, args.again)) for _ in range(args.passes)]
        seconds = statistics.median(r[0] for r in runs)
        line = (f"{args.language} {isolation:9} {PROBLEMS} programs, {runs[0][2]} tests ({runs[0][3]} passed): "
                f"median {seconds:.2f} s, {1000 * seconds / PROBLEMS:.0f} ms per program")
        if args.again:
            again = statistics.median(r[1] for r in runs)
            line += f"; a second program of each problem: {again:.2f} s, {1000 * again / PROBLEMS:.0f} ms each"
        print(line)


if __name__ == "__main__":
    main()
