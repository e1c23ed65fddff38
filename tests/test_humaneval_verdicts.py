"""All 164 HumanEval problems through the real sandbox: every canonical solution passes every
test, and neither a solution that exits before its tests (`sys.exit(0)` at import: it passed all
164 under the old protocol and passes OpenAI's exit-status check in the original SEIDR) nor one
that returns None passes them all."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from seidr.data.humaneval import HumanEvalDataset
from seidr.execution.base import ExecutionLimits
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_canonical_solutions_pass_and_exits_and_nones_fail(data_dir):
    path = data_dir / "humaneval" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    dataset = HumanEvalDataset(path)
    executor = PythonExecutor(Sandbox(ExecutionLimits(), isolation="auto"))

    async def statuses(problem, code):
        tests = list(problem.valid) + list(problem.test)
        outcomes = await executor.run(problem.preamble + code, tests, "function", entry_point=problem.entry_point,
                                      preamble=problem.preamble)
        return [o.status for o in outcomes], [o.error for o in outcomes]

    async def check_all():
        wrong = []
        for record in records:
            problem = dataset.load(record["task_id"], seed=0, valid_examples=1000, test_examples=1000,
                                   prompt_examples=1)
            right = record["prompt"] + record["canonical_solution"]
            passed, errors = await statuses(problem, right)
            if set(passed) != {"pass"}:
                wrong.append((record["task_id"], "canonical failed", [e for e in errors if e][:1]))
            exited, _ = await statuses(problem, "import sys\nsys.exit(0)\n" + right)
            if "pass" in exited:
                wrong.append((record["task_id"], "exit(0) passed a test"))
            none, _ = await statuses(problem, record["prompt"] + "    return None\n")
            if set(none) == {"pass"}:
                wrong.append((record["task_id"], "returning None passed every test"))
        return wrong

    assert asyncio.run(check_all()) == []
