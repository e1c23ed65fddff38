"""Running C++ programs: compiled once (g++, in the sandbox, with limits), the binary kept for
the rest of the run by the hash of its source, then run once per test from that one compile.

Function-mode tests (HumanEval-X) are small C++ test files, each a `main()` ending in an assert.
A program is compiled once together with all of its tests: each test's `main` becomes a function
`seidr_test_<k>`, and a generated `main` runs the one whose index it reads on stdin. Compiling is
most of the cost (about a second per g++ call), so one compile per program instead of one per test.

The small scanner here (masking comments and literals, matching brackets, cutting statements)
is shared with seidr/data/humaneval.py, which splits the HumanEval-X tests with it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.sandbox import Sandbox
from seidr.execution.scoring import FAILED_ASSERTION, judge
from seidr.problem import Example, TestMode

# -static: a static binary starts in about half the time of a dynamic one, and the per-test
# start is most of the cost of running 2,000 tests
DEFAULT_FLAGS = ("-std=c++17", "-O2", "-pipe", "-static")
# Headers whose library must be named at link time (HumanEval-X's md5 task uses OpenSSL)
LINK_LIBRARIES = {"openssl/": "-lcrypto"}


class CppExecutor:
    language = "cpp"

    def __init__(self, sandbox: Sandbox, compiler: str = "g++", flags: Sequence[str] = DEFAULT_FLAGS,
                 float_tolerance: float | None = None) -> None:
        self.sandbox = sandbox
        self.compiler = shutil.which(compiler) or compiler
        self.flags = list(flags)
        self.float_tolerance = float_tolerance
        self._binaries = Path(tempfile.mkdtemp(prefix="seidr-binaries-"))
        weakref.finalize(self, shutil.rmtree, self._binaries, True)  # binaries live as long as the run
        self._compiling: dict[str, asyncio.Lock] = {}

    async def run(self, code: str, tests: Sequence[Example], mode: TestMode, *, entry_point: str | None = None,
                  preamble: str = "") -> list[TestOutcome]:
        """One outcome per test, in order; a compile error is the verdict of every test."""
        if not tests:
            return []
        if mode == "function":
            return await self._run_functions(code, tests)
        if mode != "stdio":
            raise ValueError(f"C++ programs are judged on stdin/stdout or function tests, not {mode!r}")
        raw = await self._run_binary(code, [t.input for t in tests])
        return [judge("stdio", test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]

    async def _run_functions(self, code: str, tests: Sequence[Example]) -> list[TestOutcome]:
        """Each test is a C++ file with a `main()`; tests sharing their code before `main` (helpers
        such as `issame`) go into one binary with the program."""
        outcomes: list[TestOutcome | None] = [None] * len(tests)
        groups: dict[str, list[tuple[int, str, int]]] = {}
        for index, test in enumerate(tests):
            try:
                header, body, line = split_test(test.input)
            except ValueError as error:
                outcomes[index] = TestOutcome("error", 0.0, error=f"bad test: {error}")
                continue
            groups.setdefault(header, []).append((index, body, line))
        for header, members in groups.items():
            source = program_with_tests(code, header, [(body, line) for _, body, line in members])
            raw = await self._run_binary(source, [f"{k}\n" for k in range(len(members))])
            for k, (index, _, _) in enumerate(members):
                outcomes[index] = judge("function", tests[index], raw.get(k))
        return [outcome for outcome in outcomes if outcome is not None]

    async def _run_binary(self, source: str, inputs: list[str]) -> dict[int, dict[str, Any]]:
        """The harness's result per input of the compiled `source`, compiling it at most once."""
        libraries = [flag for header, flag in LINK_LIBRARIES.items() if f"<{header}" in source.replace(" ", "")]
        digest = hashlib.sha256(" ".join([self.compiler, *self.flags, *libraries, source]).encode()).hexdigest()
        cached = self._binaries / digest
        # one compile per source, even when identical programs are scored at the same time
        async with self._compiling.setdefault(digest, asyncio.Lock()):
            if cached.is_file():
                raw, _ = await self.sandbox.run({"mode": "binary", "binary": "program", "tests": inputs},
                                                files={"program": cached})
                return raw
            job = {"mode": "binary", "binary": "program", "tests": inputs,
                   "compile": [self.compiler, *self.flags, "-o", "program", "program.cpp", *libraries]}
            path = self._binaries / f"{digest}.cpp"
            path.write_text(source, encoding="utf-8")
            raw, binary = await self.sandbox.run(job, files={"program.cpp": path}, keep="program")
            if binary is not None:
                shutil.move(binary, cached)
            return raw


def program_with_tests(code: str, header: str, tests: Sequence[tuple[str, int]]) -> str:
    """One C++ file: the program, the tests' shared code, each test body (with the line it starts
    at in its test file) as `int seidr_test_<k>()`, and a `main` that runs the test whose index it
    reads on stdin. The program's own `main` (replies often add one with examples) is renamed so
    that it neither clashes nor runs. `#line` makes compiler messages and assertion failures point
    at the lines of the program and of the test file as they are shown."""
    parts = ["#define main seidr_program_main", '#line 1 "solution.cpp"', code.rstrip("\n"), "#undef main",
             '#line 1 "test.cpp"', header.rstrip("\n"),
             "#include <cstdio>", "#include <cstdlib>",
             # a failed test assert reports itself (see scoring.FAILED_ASSERTION) and ends the test at
             # once, without running the program's static destructors
             "static void seidr_assert_failed(const char *expression, int line) {",
             f'    std::fprintf(stderr, "\\n{FAILED_ASSERTION}%s (test.cpp line %d)\\n", expression, line);',
             "    std::fflush(stdout);", "    std::_Exit(1);", "}",
             "#undef assert",
             "#define assert(...) ((__VA_ARGS__) ? (void)0 : seidr_assert_failed(#__VA_ARGS__, __LINE__))"]
    for k, (body, line) in enumerate(tests):
        parts += [f"int seidr_test_{k}() {{", f'#line {line} "test.cpp"', body.rstrip("\n"), "    return 0;", "}"]
    cases = "\n".join(f"        case {k}: return seidr_test_{k}();" for k in range(len(tests)))
    parts += ["int main() {", "    int index = -1;", '    if (std::scanf("%d", &index) != 1) return 2;',
              "    switch (index) {", cases, "    }", "    return 2;", "}"]
    return "\n".join(parts) + "\n"


def split_test(source: str) -> tuple[str, str, int]:
    """(the code before `main`, the body of `main`, the line the body starts at) of a test file."""
    masked = mask(source)
    main = next((f for f in top_level_functions(masked) if f.name == "main"), None)
    if main is None or main.end is None:
        raise ValueError("the test has no complete main() function")
    body_start = main.open_brace + 1
    return source[:main.start], source[body_start:main.end - 1], source.count("\n", 0, body_start) + 1


# ---- a small C++ scanner: enough structure for test files and declarations, no more ----

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"\.?\d(?:'?[\w.]|[eEpP][+-])*")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def mask(source: str) -> str:
    """`source` with comments and the insides of string and character literals blanked (same
    length, newlines kept), so brackets, semicolons and keywords can be found by position."""
    out = list(source)
    i, n = 0, len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = source[i]
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            i = _NUMBER.match(source, i).end()  # 1'000 is a number, not a character literal
        elif c.isalpha() or c == "_":
            match = _IDENTIFIER.match(source, i)
            i = match.end()
            if match.group().endswith("R") and source.startswith('"', i):  # R"delim( ... )delim"
                opening = source.find("(", i)
                delimiter = source[i + 1:opening] if opening >= 0 else ""
                close = source.find(f"){delimiter}\"", opening) if opening >= 0 else -1
                end = n if close < 0 else close + len(delimiter) + 2
                blank(i + 1, end - 1)
                i = end
        elif c in "\"'":
            j = i + 1
            while j < n and source[j] != c and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            blank(i + 1, min(j, n))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def match_bracket(masked: str, start: int) -> int:
    """The index after the bracket closing the one at `start`, in masked source."""
    stack = [_CLOSERS[masked[start]]]
    i = start + 1
    while i < len(masked):
        c = masked[i]
        if c in _CLOSERS:
            stack.append(_CLOSERS[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"unbalanced {c!r} at offset {i}")
            if not stack:
                return i + 1
        i += 1
    raise ValueError(f"no closing bracket for {masked[start]!r} at offset {start}")


@dataclass(frozen=True)
class Function:
    """A function definition at file level: name, where it starts, its `{`, and the index after
    its `}` (None when the source ends inside it, as a prompt does)."""

    name: str
    start: int
    open_brace: int
    end: int | None


def top_level_functions(masked: str) -> list[Function]:
    """Function definitions at file level, in order, in masked source."""
    functions: list[Function] = []
    i, statement_start = 0, 0
    while i < len(masked):
        c = masked[i]
        if c in "([":
            i = match_bracket(masked, i)
            continue
        if c == ";":
            statement_start = i + 1
        elif c == "#":  # a preprocessor line is a statement of its own
            end = masked.find("\n", i)
            i = statement_start = len(masked) if end < 0 else end + 1
            continue
        elif c == "{":
            try:
                end: int | None = match_bracket(masked, i)
            except ValueError:
                end = None
            name = _function_name(masked, statement_start, i)
            if name is not None:
                functions.append(Function(name, _skip_space(masked, statement_start), i, end))
            if end is None:
                break
            i = statement_start = end
            continue
        i += 1
    return functions


def _function_name(masked: str, start: int, brace: int) -> str | None:
    """The name of the function whose body opens at `brace`, if the text before it is a
    declarator `... name(params) [const|noexcept|override]*`."""
    head = masked[start:brace].rstrip()
    while (trailing := re.search(r"\b(const|noexcept|override|final)\s*$", head)) is not None:
        head = head[:trailing.start()].rstrip()
    if not head.endswith(")"):
        return None
    depth, k = 0, len(head) - 1
    while k >= 0:
        depth += {")": 1, "(": -1}.get(head[k], 0)
        if depth == 0:
            break
        k -= 1
    name = re.search(r"([A-Za-z_]\w*)\s*$", head[:max(k, 0)])
    if name is None or name.group(1) in ("if", "for", "while", "switch", "catch", "return"):
        return None
    return name.group(1)


def statements(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each statement directly inside masked[start:end] (a block's body)."""
    spans = []
    i = _skip_space(masked, start)
    while i < end:
        stop = _statement_end(masked, i)
        if stop > end:
            raise ValueError(f"a statement runs past its block at offset {i}")
        if masked[i:stop].strip() != ";":  # an empty statement
            spans.append((i, stop))
        i = _skip_space(masked, stop)
    return spans


def _statement_end(masked: str, i: int) -> int:
    """The index after the statement that starts at `i`."""
    if masked[i] == "{":
        return match_bracket(masked, i)
    word = _IDENTIFIER.match(masked, i)
    keyword = word.group() if word else ""
    if keyword in ("if", "for", "while", "switch"):
        paren = _skip_space(masked, word.end())
        if masked[paren:paren + 1] != "(":
            raise ValueError(f"{keyword} without ( at offset {i}")
        stop = _statement_end(masked, _skip_space(masked, match_bracket(masked, paren)))
        after = _skip_space(masked, stop)
        if keyword == "if" and re.match(r"else\b", masked[after:]):
            stop = _statement_end(masked, _skip_space(masked, after + 4))
        return stop
    if keyword in ("do", "else", "try"):
        stop = _statement_end(masked, _skip_space(masked, word.end()))
        if keyword == "try":
            while re.match(r"catch\b", masked[(after := _skip_space(masked, stop)):]):
                paren = _skip_space(masked, after + 5)
                stop = match_bracket(masked, _skip_space(masked, match_bracket(masked, paren)))
        elif keyword == "do":
            stop = _statement_end(masked, _skip_space(masked, stop))  # while (...);
        return stop
    while i < len(masked):
        c = masked[i]
        if c in _CLOSERS:
            i = match_bracket(masked, i)
            continue
        if c == ";":
            return i + 1
        if c in ")]}":
            raise ValueError(f"unbalanced {c!r} at offset {i}")
        i += 1
    raise ValueError("a statement without its ';' at the end of the source")


def _skip_space(masked: str, i: int) -> int:
    while i < len(masked) and masked[i].isspace():
        i += 1
    return i
