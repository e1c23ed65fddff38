"""Your own problems: a JSON-lines file, one task per line. Two kinds of task:

stdin/stdout:  {"name": "double", "description": "Print twice the number read.",
                "examples": [{"input": "2\\n", "output": "4\\n"}, ...],
                "tests": [...]}                      # optional held-out examples, same shape
function:      {"name": "add", "signature": "def add(a, b):\\n    \\"\\"\\"Sum of a and b.\\"\\"\\"\\n",
                "asserts": ["assert add(1, 2) == 3", ...],
                "hidden_asserts": [...]}             # optional held-out asserts

Optional on every line: "description" (function tasks: extra text), "language" ("python"),
"entry_point" (function tasks: else the first function the signature defines). Without held-out
tests, the test score is taken on the validation examples (result.json's split says so)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from seidr.data.lines import json_line, json_type, numbered_lines
from seidr.errors import SeidrError
from seidr.problem import Example, Problem

KNOWN_KEYS = {"name", "description", "language", "examples", "tests", "signature", "entry_point", "asserts",
              "hidden_asserts"}
LANGUAGES = {"python"}


class JsonlDataset:
    """Tasks from a JSON-lines file. The whole file is checked on load and every bad line reported."""

    def __init__(self, path: str | Path, name: str = "jsonl") -> None:
        self.path = Path(path).expanduser()
        self.name = name
        self._tasks: dict[str, dict[str, Any]] | None = None

    def tasks(self) -> dict[str, dict[str, Any]]:
        if self._tasks is None:
            self._tasks = read_tasks(self.path)
        return self._tasks

    def problem_names(self) -> list[str]:
        return list(self.tasks())

    def load(self, problem: str, *, seed: int, valid_examples: int = 50, test_examples: int = 2000,
             prompt_examples: int = 5) -> Problem:
        tasks = self.tasks()
        if problem not in tasks:
            raise SeidrError(f"no task {problem!r} in {self.path}; tasks there: {', '.join(tasks)}")
        return task_problem(tasks[problem], dataset=self.name, valid_examples=valid_examples,
                            test_examples=test_examples, prompt_examples=prompt_examples)


def read_tasks(path: Path) -> dict[str, dict[str, Any]]:
    """Parse and check every line; raise one SeidrError listing all problems found."""
    if not path.is_file():
        raise SeidrError(f"task file not found: {path}; set dataset.path=<file.jsonl>")
    tasks: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    bad_lines = 0
    for number, raw in numbered_lines(path.read_bytes()):
        if not raw.strip():
            continue
        try:
            task = json_line(raw)
        except ValueError as error:
            errors.append(f"line {number}: {error}")
            bad_lines += 1
            continue
        problems = check_task(task)
        if not problems and task["name"] in tasks:
            problems = [f"name {task['name']!r} is used by an earlier line"]
        errors.extend(f"line {number}: {problem}" for problem in problems)
        bad_lines += bool(problems)
        if not problems:
            tasks[task["name"]] = task
    if errors:
        raise SeidrError(f"{path} has {bad_lines} bad line(s):\n  " + "\n  ".join(errors))
    if not tasks:
        raise SeidrError(f"{path} holds no tasks")
    return tasks


def check_task(task: Any) -> list[str]:
    """What is wrong with one task (empty when it is fine)."""
    if not isinstance(task, dict):
        return [f"a task must be a JSON object, got {json_type(task)}"]
    problems = [f"unknown key {key!r}" for key in task if key not in KNOWN_KEYS]
    if not isinstance(task.get("name"), str) or not task.get("name"):
        problems.append('"name" must be a non-empty string')
    if task.get("language", "python") not in LANGUAGES:
        problems.append(f'"language" must be one of {sorted(LANGUAGES)}, not {task.get("language")!r}')
    if "description" in task and not isinstance(task["description"], str):
        problems.append('"description" must be a string')
    has_io, has_signature = "examples" in task, "signature" in task
    if has_io == has_signature:
        problems.append('give either "examples" (stdin/stdout) or "signature" with "asserts" (function), not '
                        + ("both" if has_io else "neither"))
    elif has_io:
        if not isinstance(task.get("description"), str) or not task["description"].strip():
            problems.append('a stdin/stdout task needs a "description"')
        problems += _check_pairs(task, "examples", required=True) + _check_pairs(task, "tests", required=False)
        problems += [f"key {key!r} belongs to function tasks" for key in ("asserts", "hidden_asserts", "entry_point")
                     if key in task]
    else:
        problems += _check_signature(task)
        problems += _check_asserts(task, "asserts", required=True) + _check_asserts(task, "hidden_asserts", False)
        problems += [f"key {key!r} belongs to stdin/stdout tasks" for key in ("examples", "tests") if key in task]
    return problems


def _check_pairs(task: dict, key: str, required: bool) -> list[str]:
    if key not in task:
        return [f'"{key}" is required'] if required else []
    pairs = task[key]
    if not isinstance(pairs, list) or (required and not pairs):
        return [f'"{key}" must be a non-empty list of {{"input": str, "output": str}}']
    return [f'"{key}"[{i}] must be {{"input": str, "output": str}}' for i, pair in enumerate(pairs)
            if not (isinstance(pair, dict) and set(pair) == {"input", "output"}
                    and all(isinstance(v, str) for v in pair.values()))]


def _check_signature(task: dict) -> list[str]:
    signature = task.get("signature")
    if not isinstance(signature, str) or not signature.strip():
        return ['"signature" must be a non-empty string']
    try:
        functions = [n.name for n in ast.parse(signature + "\n    pass\n").body if isinstance(n, ast.FunctionDef)]
    except SyntaxError as error:
        return [f'"signature" is not a Python function header ({error.msg})']
    entry = task.get("entry_point")
    if entry is not None and entry not in functions:
        return [f'"entry_point" {entry!r} is not defined by the signature (it defines: {", ".join(functions)})']
    return [] if functions else ['"signature" defines no function']


def _check_asserts(task: dict, key: str, required: bool) -> list[str]:
    if key not in task:
        return [f'"{key}" is required'] if required else []
    tests = task[key]
    if not isinstance(tests, list) or (required and not tests) or not all(isinstance(t, str) for t in tests):
        return [f'"{key}" must be a non-empty list of strings']
    problems = []
    for i, test in enumerate(tests):
        try:
            tree = ast.parse(test)
        except SyntaxError as error:
            problems.append(f'"{key}"[{i}] is not valid Python ({error.msg})')
            continue
        if not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
            problems.append(f'"{key}"[{i}] has no assert')
    return problems


def task_problem(task: dict[str, Any], dataset: str = "jsonl", valid_examples: int = 50,
                 test_examples: int = 2000, prompt_examples: int = 5) -> Problem:
    """A checked task as a Problem."""
    if "examples" in task:
        valid = [Example(p["input"], p["output"]) for p in task["examples"]][:valid_examples]
        held = [Example(p["input"], p["output"]) for p in task.get("tests", [])][:test_examples]
        return Problem(name=task["name"], dataset=dataset, description=task["description"], mode="stdio",
                       valid=tuple(valid), test=tuple(held or valid), prompt_examples=tuple(valid[:prompt_examples]),
                       split="heldout" if held else "valid=test")
    signature = task["signature"]
    if not signature.endswith("\n"):
        signature += "\n"
    entry = task.get("entry_point") or next(
        n.name for n in ast.parse(signature + "    pass\n").body if isinstance(n, ast.FunctionDef))
    valid = [Example(t if t.endswith("\n") else t + "\n") for t in task["asserts"]][:valid_examples]
    held = [Example(t if t.endswith("\n") else t + "\n") for t in task.get("hidden_asserts", [])][:test_examples]
    description = task.get("description", "")
    return Problem(name=task["name"], dataset=dataset, description=description or signature, mode="function",
                   valid=tuple(valid), test=tuple(held or valid), entry_point=entry,
                   signature=(f"# {description}\n" if description else "") + signature,
                   split="heldout" if held else "valid=test")
