"""Running C++ programs: compiled once (g++, in the sandbox, with limits), the binary kept for
the rest of the run by the hash of its source, then run once per test from that one compile.

Function-mode tests (HumanEval-X) are small C++ test files, each a `main()` ending in an assert.
A program is compiled once together with all of its tests, but as two translation units linked
into one binary: the program's own file, and seidr's test driver (`driver_source`), which holds
each test's `main` as a function `seidr_test_<k>` and a `main` that runs the test whose index it
reads on stdin. The program's `#define`s cannot reach the driver's code, and the driver declares
the program's functions itself (their declarators, checked to hold nothing but names and types).
Compiling is most of the cost (about a second per g++ call), so one compile per program instead
of one per test.

A test passes only when the driver says so: after the test's code has returned, the driver reads
a secret the harness made for this one run (a pipe on fd 3, filled before the program started),
and writes `seidr-pass <index> <pid> <secret>` to fd 4 with raw system calls (no function of the
C library, which a statically linked program could replace), then ends the process at once. The
harness (harness.run_binary_tests) counts a test as run to its end only with that exact line from
the process it started; an exit(0) anywhere (in the function, in a static constructor, an atexit
handler, a forked child), printed "pass" lines or a `#define`d assert leave no such line, so the
test fails. This is a line a program cannot produce by accident, by ending early or by printing;
it is no proof against a program written against this protocol: sharing the driver's process and
user, it can read the secret itself, or, at the process level, swap its binary for one that does
(the namespace level binds the binary read-only; tests/test_cpp_exploits.py keeps both as known
limits). A Python program, in contrast, never
shares a process with its tests.

Compiling and running are separate sandbox runs: the binary is taken out of a sandbox in which only
the compiler ran, never out of one in which the program ran (it could have replaced its binary with
a link to any file, a FIFO or /proc/kmsg, and killed the harness so that nothing could undo it; the
sandbox's copy follows links). seidr takes that copy into its cache only through `_keep_binary`
(no links, plain files, bounded size, off the event loop). The driver's object is compiled once
and linked with every program it fits.

The small scanner here (masking comments and literals, matching brackets, cutting statements)
is shared with seidr/data/humaneval.py, which splits the HumanEval-X tests with it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from seidr.execution.base import TestOutcome
from seidr.execution.harness import NOT_RUN
from seidr.execution.sandbox import Sandbox, copy_out
from seidr.execution.scoring import FAILED_ASSERTION, judge
from seidr.problem import Example, TestMode

# -static: a static binary starts in about half the time of a dynamic one, and the per-test
# start is most of the cost of running 2,000 tests
DEFAULT_FLAGS = ("-std=c++17", "-O2", "-pipe", "-static")
# Headers whose library must be named at link time (HumanEval-X's md5 task uses OpenSSL)
LINK_LIBRARIES = {"openssl/": "-lcrypto"}
# A compiled binary larger than this is not kept (a static C++ binary is 2-3 MB)
MAX_BINARY_BYTES = 256 * 1024 * 1024


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
        inputs = [t.input for t in tests]
        binary, raw = await self._compile({"program.cpp": code}, ["-o", "program", "program.cpp"], "program", inputs)
        if binary is not None:
            raw = await self._run(binary, inputs, report=False)
        return [judge("stdio", test, raw.get(index), self.float_tolerance) for index, test in enumerate(tests)]

    async def _run_functions(self, code: str, tests: Sequence[Example]) -> list[TestOutcome]:
        """Each test is a C++ file with a `main()`; tests sharing their code before `main` (helpers
        such as `issame`) go into one binary with the program. After a timeout, the tests not yet
        run fail as timeouts without running (one time budget per program)."""
        outcomes: list[TestOutcome | None] = [None] * len(tests)
        groups: dict[str, list[tuple[int, str, int]]] = {}
        for index, test in enumerate(tests):
            try:
                header, body, line = split_test(test.input)
            except ValueError as error:
                outcomes[index] = TestOutcome("error", 0.0, error=f"bad test: {error}")
                continue
            groups.setdefault(header, []).append((index, body, line))
        timed_out = False
        for header, members in groups.items():
            if timed_out:  # one time budget per program, across its binaries too (see harness.NOT_RUN)
                for index, _, _ in members:
                    outcomes[index] = TestOutcome("timeout", 0.0, error=NOT_RUN)
                continue
            cases = [(body, line) for _, body, line in members]
            inputs = [f"{k}\n" for k in range(len(members))]
            # the driver's object is compiled once for every program it fits (a search's programs
            # mostly share their includes and declarations), and linked first: its definitions win
            driver, raw = await self._compile({"driver.cpp": driver_source(code, header, cases)},
                                              ["-c", "-o", "driver.o", "driver.cpp"], "driver.o", inputs)
            if driver is not None:
                binary, raw = await self._compile(
                    {"program.cpp": program_source(code, header, cases), "driver.o": driver},
                    ["-o", "program", "driver.o", "program.cpp"], "program", inputs)
                if binary is not None:
                    raw = await self._run(binary, inputs, report=True)
            for k, (index, _, _) in enumerate(members):
                outcomes[index] = judge("function", tests[index], raw.get(k))
                timed_out = timed_out or outcomes[index].status == "timeout"
        return [outcome for outcome in outcomes if outcome is not None]

    async def _compile(self, sources: dict[str, str | Path], arguments: list[str], output: str,
                       inputs: list[str]) -> tuple[Path | None, dict[int, dict[str, Any]]]:
        """(the compiler's `output` from `sources` (file name: text, or a file compiled before),
        None) compiling at most once per source, or (None, the compiler's verdict for each input).

        The output comes out of a sandbox in which only the compiler ran (see the module's
        docstring), into the cache through `_keep_binary`."""
        texts = "".join(value for value in sources.values() if isinstance(value, str))
        libraries = [flag for header, flag in LINK_LIBRARIES.items()
                     if f"<{header}" in texts.replace(" ", "") and "-c" not in arguments]
        argv = [self.compiler, *self.flags, *arguments, *libraries]
        named = sorted((name, value if isinstance(value, str) else f"file {value.name}")
                       for name, value in sources.items())
        digest = hashlib.sha256("\0".join([*argv, *(f"{name}\0{value}" for name, value in named)]).encode()).hexdigest()
        cached = self._binaries / digest
        # one compile per source, even when identical programs are scored at the same time
        async with self._compiling.setdefault(digest, asyncio.Lock()):
            if cached.is_file():
                return cached, {}
            folder = self._binaries / f"{digest}.src"
            folder.mkdir(exist_ok=True)
            files = {}
            for name, value in sources.items():
                if isinstance(value, Path):
                    files[name] = value
                else:
                    (folder / name).write_text(value, encoding="utf-8")
                    files[name] = folder / name
            job = {"mode": "binary", "binary": output, "tests": inputs, "run": False, "compile": argv}
            raw, kept = await self.sandbox.run(job, files=files, keep=output)
            if kept is not None and raw:  # a failed compile may leave a partial output: never cached
                await asyncio.to_thread(kept.unlink, True)
            elif kept is not None and await asyncio.to_thread(_keep_binary, kept, cached):
                return cached, {}
            return None, raw or {index: {"status": "compile", "error": "the compiler made no program"}
                                 for index in range(len(inputs))}

    async def _run(self, binary: Path, inputs: list[str], report: bool) -> dict[int, dict[str, Any]]:
        """The harness's result per input of a compiled binary. With `report`, a test passes only
        on the test driver's report (see the module's docstring)."""
        raw, _ = await self.sandbox.run({"mode": "binary", "binary": "program", "tests": inputs, "report": report},
                                        files={"program": binary})
        return raw


def _keep_binary(kept: Path, cached: Path) -> bool:
    """Move the sandbox's copy of a compiled binary into the cache, if it is a plain file of
    sensible size (sandbox.copy_out: never through a link, never from a device or FIFO, never more
    than MAX_BINARY_BYTES). Blocking file work: called off the event loop."""
    try:
        return copy_out(kept, cached, MAX_BINARY_BYTES, mode=0o700)
    finally:
        try:
            os.unlink(kept)
        except OSError:
            pass


# ---- the two translation units of a function-mode binary ----

# Everything the driver declares for the program must be names and types only: no code, no
# literals, no preprocessor, no attributes; anything else is left out (and the test's call then
# fails to compile, which fails the program, never passes it).
_SAFE_HEAD = re.compile(r"[A-Za-z_][\w\s:<>,*&]*")
_SAFE_PARAMS = re.compile(r"[\w\s:<>,*&\[\]]*(=\s*[-+]?[\w.]+[\w\s:<>,*&\[\]]*)*")  # `int y = 0` too
_SAFE_TYPE = re.compile(r"[A-Za-z_][\w\s:<>,*&]*")
_SYSTEM_INCLUDE = re.compile(r"[ \t]*#[ \t]*include[ \t]*<([A-Za-z_][\w+-]*(?:/[A-Za-z_][\w+-]*)*(?:\.[\w]+)?)>[ \t]*$",
                             re.MULTILINE)


# The headers of the program the driver includes too (the tests use their names): the C and C++
# standard libraries' (a C++ one has no extension), and the libraries HumanEval-X links. Others
# could define macros that change what a test's code means; the program's own file has them all.
_LIBRARY_HEADER = re.compile(r"[a-z_]+|(assert|complex|ctype|errno|fenv|float|inttypes|iso646|limits|locale|math|"
                             r"setjmp|signal|stdalign|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|tgmath|time|"
                             r"uchar|wchar|wctype)\.h|bits/stdc\+\+\.h|(boost|openssl)/[\w/]+\.h(pp)?")


def program_source(code: str, header: str, tests: Sequence[tuple[str, int]]) -> str:
    """The program's translation unit: its code as written, its own `main` (replies often add
    one with examples) renamed so that it neither clashes nor runs. `#line` makes compiler
    messages point at the program's lines as they are shown. So that the driver can call them,
    the functions the tests call lose a `static` (blanked, lines unchanged), and an `inline` or
    `constexpr` one is used once here, so that its code exists outside this file."""
    keep = []
    text = list(code)
    for k, (function, _) in enumerate(_called_functions(code, header, tests)):
        head = mask(code)[function.start:function.open_brace]
        for word in re.finditer(r"\bstatic\b", head):
            text[function.start + word.start():function.start + word.end()] = " " * len("static")
        if re.search(r"\b(inline|constexpr)\b", head) and not head.lstrip().startswith("template"):
            keep.append(f"[[maybe_unused, gnu::used]] static auto *const seidr_keep_{k} = &{function.name};")
    parts = ["#define main seidr_program_main", '#line 1 "solution.cpp"', "".join(text).rstrip("\n")]
    if keep:
        parts += ["#undef main", '#line 1 "seidr-keep.cpp"', *keep]
    return "\n".join(parts) + "\n"


def driver_source(code: str, header: str, tests: Sequence[tuple[str, int]]) -> str:
    """seidr's translation unit: the system headers the program includes (the tests use their
    names), declarations of the program's functions the tests call, the tests' shared code, each
    test body (with the line it starts at in its test file) as `int seidr_test_<k>()`, and a
    `main` that runs the test whose index it reads on stdin and reports its end (see the
    module's docstring). `#line` makes compiler messages and assertion failures point at the
    lines of the test file as they are shown."""
    includes = [f"#include <{name}>" for name in dict.fromkeys(_SYSTEM_INCLUDE.findall(mask(code)))
                if _LIBRARY_HEADER.fullmatch(name)]
    declarations = [f"{declaration};" for _, declaration in _called_functions(code, header, tests)]
    parts = ['#line 1 "seidr-driver.cpp"', *includes, "namespace std {}", "using namespace std;",
             *declarations, '#line 1 "test.cpp"', header.rstrip("\n"), '#line 1 "seidr-driver.cpp"',
             _DRIVER_RUNTIME.replace("@FAILED@", FAILED_ASSERTION)]
    for k, (body, line) in enumerate(tests):
        parts += [f"static int seidr_test_{k}() {{", f'#line {line} "test.cpp"', body.rstrip("\n"), "    return 0;",
                  "}", '#line 1 "seidr-driver.cpp"']
    cases = "\n".join(f"        case {k}: seidr_test_{k}(); seidr_passed({k});" for k in range(len(tests)))
    parts += ["int main() {", "    std::fflush(nullptr);", "    std::setvbuf(stdout, nullptr, _IONBF, 0);",
              "    long index = seidr_read_index();", "    switch (index) {", cases, "    }", "    return 2;", "}"]
    return "\n".join(parts) + "\n"


# The driver's own code, after the test file's header (so its `assert` is the one in force). The
# verdict path uses raw system calls only: a statically linked program may define write(),
# _Exit() or fflush() itself, and the linker would take them.
_DRIVER_RUNTIME = r"""#include <cstdio>
#include <cstdlib>
#include <sys/syscall.h>
#include <unistd.h>
namespace {
long seidr_sys(long number, long a, long b, long c) {
#if defined(__x86_64__)
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"(number), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return result;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory", "cc");
    return x0;
#else
    return syscall(number, a, b, c);
#endif
}
[[noreturn]] void seidr_exit(int status) {
    for (;;) seidr_sys(SYS_exit_group, status, 0, 0);
}
void seidr_write(int fd, const char *text, long length) {
    while (length > 0) {
        long done = seidr_sys(SYS_write, fd, (long)text, length);
        if (done <= 0) return;
        text += done;
        length -= done;
    }
}
long seidr_length(const char *text) {
    long n = 0;
    while (text[n]) n++;
    return n;
}
char *seidr_number(char *out, long value) {
    char digits[24];
    int n = 0;
    if (value < 0) { *out++ = '-'; value = -value; }
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
    while (n > 0) *out++ = digits[--n];
    return out;
}
long seidr_read_index() {
    char text[32];
    long got = seidr_sys(SYS_read, 0, (long)text, sizeof text);
    long value = 0, k = 0;
    if (got <= 0 || text[0] < '0' || text[0] > '9') return -1;
    while (k < got && k < 9 && text[k] >= '0' && text[k] <= '9') value = value * 10 + (text[k++] - '0');
    return value;
}
[[noreturn]] void seidr_assert_failed(const char *expression, int line) {
    // a failed test assert reports itself (see scoring.FAILED_ASSERTION) and ends the test at once
    char where[64] = " (test.cpp line ";
    char *end = seidr_number(where + seidr_length(where), line);
    *end++ = ')';
    *end++ = '\n';
    seidr_write(2, "\n@FAILED@", seidr_length("\n@FAILED@"));
    seidr_write(2, expression, seidr_length(expression));
    seidr_write(2, where, end - where);
    seidr_exit(1);
}
[[noreturn]] void seidr_passed(long index) {
    // the test's code returned: read this run's secret, report with it, end before anything
    // of the program (atexit handlers, static destructors) runs again
    std::fflush(nullptr);
    char secret[80];
    long length = 0;
    while (length < 79) {
        long got = seidr_sys(SYS_read, 3, (long)(secret + length), 79 - length);
        if (got <= 0) break;
        length += got;
        if (secret[length - 1] == '\n') break;
    }
    if (length < 2 || secret[length - 1] != '\n') {
        const char gone[] = "\nthe test's secret was gone when the test ended (the program read it or closed it)\n";
        seidr_write(2, gone, sizeof gone - 1);
        seidr_exit(3);
    }
    char line[160] = "seidr-pass ";
    char *out = seidr_number(line + seidr_length(line), index);
    *out++ = ' ';
    out = seidr_number(out, seidr_sys(SYS_getpid, 0, 0, 0));
    *out++ = ' ';
    for (long k = 0; k < length; k++) *out++ = secret[k];
    seidr_write(4, line, out - line);
    seidr_exit(0);
}
}  // namespace
#undef assert
#define assert(...) ((__VA_ARGS__) ? (void)0 : seidr_assert_failed(#__VA_ARGS__, __LINE__))"""


def _called_functions(code: str, header: str, tests: Sequence[tuple[str, int]]) -> list[tuple[Function, str]]:
    """(function, declaration) of each function the program defines at file level and the tests
    call (and do not define themselves), as the driver declares it: its declarator without
    attributes and specifiers, the program's type aliases (`typedef`, `using X =`, `#define ll
    long long`) spelled out; left out when it holds anything but names, types and simple default
    arguments."""
    masked = mask(code)
    test_text = mask(header + "\n".join(body for body, _ in tests))
    called = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", test_text))
    own = {f.name for f in top_level_functions(mask(header))} | {"main"}
    aliases = _type_aliases(masked)
    found = []
    for function in top_level_functions(masked):
        if function.name not in called or function.name in own:
            continue
        head = " ".join(masked[function.start:function.open_brace].split())
        head = re.sub(r"\[\[[^\[\]]*\]\]|\b__attribute__\s*\(\([^()]*(\([^()]*\)[^()]*)*\)\)", " ", head)
        head = re.sub(r"\b(static|inline|constexpr|extern|virtual)\b\s*", "", head)
        head = re.sub(r"\s*\bnoexcept\s*$", "", head).strip()
        for _ in range(4):  # aliases of aliases
            head = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: aliases.get(m.group(), m.group()), head)
        opening = head.find("(")
        if opening <= 0 or not head.endswith(")"):
            continue
        name_part, params = head[:opening].rstrip(), head[opening + 1:-1]
        if not name_part.endswith(function.name) or "::" in name_part[-len(function.name) - 2:]:
            continue
        if _SAFE_HEAD.fullmatch(name_part) and _SAFE_PARAMS.fullmatch(params):
            found.append((function, f"{name_part}({params})"))
    return found


def _type_aliases(masked: str) -> dict[str, str]:
    """The program's simple type aliases: name -> the type it stands for (names and types only)."""
    aliases = {}
    for match in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+([^\n]*?)[ \t]*$", masked, re.MULTILINE):
        aliases[match.group(1)] = match.group(2)
    for match in re.finditer(r"\btypedef\s+([^;{}()]+?)\s+([A-Za-z_]\w*)\s*;", masked):
        aliases[match.group(2)] = match.group(1)
    for match in re.finditer(r"\busing\s+([A-Za-z_]\w*)\s*=\s*([^;{}()]+?)\s*;", masked):
        aliases[match.group(1)] = match.group(2)
    return {name: " ".join(value.split()) for name, value in aliases.items()
            if _SAFE_TYPE.fullmatch(" ".join(value.split()) or "-")}


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
