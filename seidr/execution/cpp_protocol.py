"""The test protocol of C++ function tasks (HumanEval-X): a test passes only when seidr's own code,
in a process the program cannot reach, says so.

Each test is a C++ file whose `main()` asserts on the values the program's functions return. seidr
builds two binaries from a program and its tests:

- the **checker** (`checker_source`): the tests' code, expected values included, and no code of the
  program at all. The task's entry point is a stub, with the signature the dataset gives it
  (`Task`), that sends its arguments to the server and returns the value that comes back, rebuilt
  as plain data (cpp_runtime/seidr_wire.hpp); the helpers the prompt defines (HumanEval-X's
  `poly`, `encode_cyclic`) are the dataset's own code, compiled in. Only the entry point comes from
  the program: a program's `rand()` does not choose the tests' inputs, its `poly()` does not judge
  its `find_zero()`, and its overloads cannot take the caller's arguments by reference. (Without a
  Task, as in unit tests, every function of the program the tests call is a stub with the
  program's own signature.) Nor do the program's headers reach it: the checker includes the
  dataset's and seidr's, and the tests' calls of the entry point reach the stub however many
  functions of the same name the headers declare (`int strlen(string)` beside libc's
  `strlen(const char *)`). The asserts run here, and when a test's code returns,
  the checker writes `seidr-pass <index> <pid> <secret>` on fd 4 with a secret made for that run
  that it reads from fd 3 (harness.run_reported checks the line).
- the **server** (`program_source` + `server_source`): the program's translation unit as written
  (its own `main` renamed) linked with a loop that reads a call, runs the program's function and
  answers with what it returned, and with the arguments it was handed by reference to non-const.

The checker starts the server on a test's first call and gives it only the two pipes of the
calls (fd 0 and 3) and the test's stdout and stderr. The checker is not dumpable and its binary is
execute-only for the run user, so the program can neither read the expected values out of it nor
reach the checker's descriptors through /proc; the harness runs the checker through a descriptor it
opened before any program code ran, so no file swapped in later is run as the checker. The server
runs under a seccomp filter of the checker's that refuses every way of signalling the checker (kill
and its relatives, pidfds, a file's SIGIO owner), and the harness's filter refuses changing its
priority or CPUs: the program cannot stop, kill or slow the process that judges it. So whatever
the program does (exit early, from a static constructor or an atexit handler, print report lines,
#define the test's names, read its descriptors, replace its binary, answer calls it was not asked),
it only chooses the values its functions return: its end before the test's end is the test's end
(killed by the same signal, the same exit status, or a failure when it exits 0), and a reply that is
not a well-formed value of the declared type fails the test.

The server declares the program's functions itself, from the program's own definitions (their
declarators, checked to hold nothing but names and types), and calls the entry point by name with
the dataset's argument types, its declarations in the call's own block so that no library function
of that name can take the call: the program's `#define`s never reach seidr's code, and any spelling
of the function a direct call would accept works. Compiling is most of the cost (about a second per g++ call): the checker and the
server's object depend only on the tests and the program's declarations, so a search's programs
mostly share them, and each program costs one compile, its own file linked with the server."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Sequence

from seidr.execution.cpp_scan import Function, mask, top_level_functions
from seidr.execution.scoring import FAILED_ASSERTION

# Everything the checker and the server declare for the program must be names and types only: no code, no
# literals, no preprocessor, no attributes; anything else is left out (and the test's call then
# fails to compile, which fails the program, never passes it).
_SAFE_HEAD = re.compile(r"[A-Za-z_][\w\s:<>,*&]*")
_SAFE_PARAMS = re.compile(r"[\w\s:<>,*&\[\]]*(=\s*[-+]?[\w.]+[\w\s:<>,*&\[\]]*)*")  # `int y = 0` too
_SAFE_TYPE = re.compile(r"[A-Za-z_][\w\s:<>,*&]*")
_SYSTEM_INCLUDE = re.compile(r"[ \t]*#[ \t]*include[ \t]*<([A-Za-z_][\w+-]*(?:/[A-Za-z_][\w+-]*)*(?:\.[\w]+)?)>[ \t]*$",
                             re.MULTILINE)


# The headers of the program the checker and the server include too (the tests use their names): the C and C++
# standard libraries' (a C++ one has no extension), and the libraries HumanEval-X links. Others
# could define macros that change what a test's code means; the program's own file has them all.
_LIBRARY_HEADER = re.compile(r"[a-z_]+|(assert|complex|ctype|errno|fenv|float|inttypes|iso646|limits|locale|math|"
                             r"setjmp|signal|stdalign|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|tgmath|time|"
                             r"uchar|wchar|wctype)\.h|bits/stdc\+\+\.h|(boost|openssl)/[\w/]+\.h(pp)?")



def program_source(code: str, header: str, tests: Sequence[tuple[str, int]]) -> str:
    """The program's translation unit: its code as written, its own `main` (replies often add
    one with examples) renamed so that it neither clashes nor runs. `#line` makes compiler
    messages point at the program's lines as they are shown. So that the server can call them,
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


CHECKER_RUNTIME = ("seidr_wire.hpp", "seidr_checker.hpp", "seidr_checker.cpp")
SERVER_RUNTIME = ("seidr_wire.hpp", "seidr_server.hpp")


@cache
def runtime_sources(names: tuple[str, ...]) -> dict[str, str]:
    """seidr's C++ files of the protocol (file name: text; see cpp_runtime/), compiled beside the
    generated sources."""
    folder = resources.files("seidr.execution") / "cpp_runtime"
    return {name: (folder / name).read_text(encoding="utf-8") for name in names}


def _library_includes(code: str) -> list[str]:
    return [f"#include <{name}>" for name in dict.fromkeys(_SYSTEM_INCLUDE.findall(mask(code)))
            if _LIBRARY_HEADER.fullmatch(name)]


@dataclass(frozen=True)
class Signature:
    """A program function the tests call, as both sides declare it: `declaration` as the program
    wrote it (aliases spelled out, default arguments kept), its return type, its name, and each
    parameter's type with an `@` where a name goes (before any array suffix)."""

    declaration: str
    returns: str
    name: str
    parameters: tuple[str, ...]

    def named(self, name: str) -> Signature:
        """The same signature (default arguments kept) under another name."""
        head = f"{self.returns}{self.name}"
        assert self.declaration.startswith(head), self.declaration
        return Signature(f"{self.returns}{name}{self.declaration[len(head):]}", self.returns, name, self.parameters)

    def renamed(self, name: str) -> str:
        """The declaration of a function of the same type under another name (no defaults)."""
        return f"{self.returns}{name}({', '.join(kind.replace('@', '') for kind in self.parameters)})"

    def parameter_list(self, names: Sequence[str]) -> str:
        """The parameters, called `names`, as a definition's (or a lambda's) parentheses hold them."""
        return ", ".join(kind.replace("@", f" {name}") for kind, name in zip(self.parameters, names))

    def defined(self, names: Sequence[str]) -> str:
        """The head of a definition with this signature whose parameters are called `names`."""
        return f"{self.returns}{self.name}({self.parameter_list(names)})"


# The words a parameter's type may end with: `unsigned long long` has no name, `long long n` has one
_TYPE_WORDS = {"int", "long", "short", "char", "bool", "float", "double", "unsigned", "signed", "const", "volatile",
               "void", "auto", "wchar_t", "char8_t", "char16_t", "char32_t"}


def _split_parameters(params: str) -> list[str] | None:
    """The parameters of a declarator, split at the commas outside <>, () and []."""
    if params.strip() in ("", "void"):
        return []
    parts, depth, current = [], 0, ""
    for c in params:
        depth += 1 if c in "<([" else -1 if c in ">)]" else 0
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
    parts.append(current)
    return [part.strip() for part in parts] if depth == 0 else None


def signature(declaration: str, name: str) -> Signature | None:
    """`declaration` ("<return type> name(<parameters>)") taken apart; None if a parameter cannot
    be read."""
    opening = declaration.find("(")
    returns = declaration[:opening].rstrip()[:-len(name)]
    split = _split_parameters(declaration[opening + 1:-1])
    if split is None:
        return None
    parameters = []
    for part in split:
        text = part.partition("=")[0].strip()  # a default stays in the declaration only
        suffix = re.search(r"(\s*\[[^\]]*\])*$", text)
        core, arrays = text[:suffix.start()], text[suffix.start():]
        named = re.fullmatch(r"(.*?[\w>*&\s])\s*\b([A-Za-z_]\w*)", core)
        if named and named.group(1).strip() and named.group(2) not in _TYPE_WORDS \
                and not named.group(1).rstrip().endswith("::"):
            core = named.group(1).rstrip()
        if not core:
            return None
        parameters.append(f"{core} @{arrays}")
    return Signature(declaration, returns, name, tuple(parameters))


def _signatures(code: str, header: str, tests: Sequence[tuple[str, int]]) -> list[Signature]:
    found = []
    for function, declaration in _called_functions(code, header, tests):
        parsed = signature(declaration, function.name)
        if parsed is not None:
            found.append(parsed)
    return found


# Headers every checker of a task includes (HumanEval-X's declarations all have them): a test's
# `abs(x - y) < 1e-6` means the floating-point abs whatever the prompt includes
CHECKER_BASE_HEADERS = ("#include <stdio.h>", "#include <stdlib.h>", "#include <math.h>", "#include <algorithm>")
# The stubs' own names in the checker: no library declares a name with this prefix
STUB_PREFIX = "seidr_entry_"

# The tests' assert, after their own headers (so that it is the one in force): a failure reports
# itself on stderr (scoring.FAILED_ASSERTION tells a wrong answer from a crash) and ends the test
ASSERT_MACRO = ("#define assert(...) ((__VA_ARGS__) ? (void)0 : "
                f"seidr_checker::assert_failed(#__VA_ARGS__, __LINE__, \"{FAILED_ASSERTION}\"))")


def checker_source(code: str, header: str, tests: Sequence[tuple[str, int]], known: Task | None = None) -> str:
    """seidr's binary (see the module's docstring): headers, the task's helpers and a stub for its
    entry point (with `known`; without, a stub for each function of the program the tests call,
    declared as the program declares it), the tests' shared code, each test body (with the line it
    starts at in its test file) as `seidr_test_<k>()`, and a `main` that runs the test whose index
    it reads on stdin and reports its end. `#line` makes compiler messages and assertion failures
    point at the lines of the test file as they are shown.

    With `known`, the headers are the dataset's and seidr's only (`Task.includes`, the prompt's and
    CHECKER_BASE_HEADERS): nothing the program wrote reaches this translation unit, so its
    `#include <cstring>` cannot bring a `strlen(const char *)` that outbids the stub of an entry
    point called `strlen`. Whatever the headers declare, the tests' calls reach the stub: after
    the last header, each stubbed name is a macro for the stub's own name (`seidr_entry_<name>`),
    which no library declares."""
    stubbed = _stubbed(code, header, tests, known)
    includes = [*CHECKER_BASE_HEADERS, *known.includes] if known is not None else _library_includes(code)
    parts = ['#line 1 "seidr-checker.cpp"', *includes, '#include "seidr_checker.hpp"', "namespace std {}",
             "using namespace std;"]
    if known is not None:
        parts += ['#line 1 "prompt.cpp"', known.helpers.rstrip("\n"), '#line 1 "seidr-checker.cpp"']
    # the tests' own headers before the renaming, so that it reaches no library declaration
    parts += [line for line, masked in zip(header.splitlines(), mask(header).splitlines())
              if _SYSTEM_INCLUDE.fullmatch(masked)]
    renamed = list(dict.fromkeys(function.name for function in stubbed))
    for k, function in enumerate(stubbed):
        stub = function.named(STUB_PREFIX + function.name)
        names = [f"seidr_a{n}" for n in range(len(function.parameters))]
        parts += [f"{stub.declaration};", f"{stub.renamed(f'seidr_signature_{k}')};", f"{stub.defined(names)} {{",
                  f"    return seidr_checker::stub<decltype(seidr_signature_{k})>::call({k}, \"{function.name}\""
                  + "".join(f", {n}" for n in names) + ");", "}"]
    for name in renamed:
        parts += [f"#undef {name}", f"#define {name} {STUB_PREFIX}{name}"]
    parts += ['#line 1 "test.cpp"', header.rstrip("\n"), '#line 1 "seidr-checker.cpp"', "#undef assert",
              ASSERT_MACRO]
    for k, (body, line) in enumerate(tests):
        parts += [f"static int seidr_test_{k}() {{", f'#line {line} "test.cpp"', body.rstrip("\n"), "    return 0;",
                  "}", '#line 1 "seidr-checker.cpp"']
    parts += [f"#undef {name}" for name in renamed]  # the tests' code ends here
    cases = "\n".join(f"        case {k}: seidr_test_{k}(); seidr_checker::passed({k});" for k in range(len(tests)))
    parts += ["int main(int argc, char **argv) {", "    seidr_checker::start(argc, argv);",
              "    switch (seidr_checker::read_index()) {", cases, "    }", "    return 2;", "}"]
    return "\n".join(parts) + "\n"


def _stubbed(code: str, header: str, tests: Sequence[tuple[str, int]], known: Task | None) -> list[Signature]:
    """The functions the checker calls in the server, as the checker numbers them: the task's entry
    point with the dataset's signature, or (no task known) those of the program the tests call."""
    return [known.entry] if known is not None else _signatures(code, header, tests)


def server_source(code: str, header: str, tests: Sequence[tuple[str, int]], known: Task | None = None) -> str:
    """The server's own translation unit, linked with the program's: the program's functions the
    tests call, declared as the program declares them, and a `main` that answers the checker's
    calls (numbered as the checker numbers them). With `known`, the one call is the entry point
    with the dataset's signature, made by name: whatever overloads or compatible types the program
    chose, C++ picks the one a direct call would, and only the dataset's parameters by reference
    to non-const travel back."""
    parts = ['#line 1 "seidr-server.cpp"', *_library_includes(code), '#include "seidr_server.hpp"',
             "namespace std {}", "using namespace std;"]
    cases = []
    declared = _called_functions(code, header, tests)
    if known is None:
        parts += [f"{declaration};" for _, declaration in declared]
    # the program's own declarations of the entry point, at block scope in the call: a name found
    # there hides every other declaration (a library's function of the same name, std's by
    # `using namespace std`) and turns off argument-dependent lookup
    # (none readable: the dataset's, so that the call links to the program's function or fails)
    entry = " ".join(f"{declaration};" for function, declaration in declared
                     if known is not None and function.name == known.entry.name)
    if known is not None and not entry:
        entry = f"{known.entry.declaration};"
    for k, function in enumerate(_stubbed(code, header, tests, known)):
        parts.append(f"{function.renamed(f'seidr_signature_{k}')};")
        if known is None:
            target = f"static_cast<decltype(seidr_signature_{k}) *>(&{function.name})"
        else:
            names = [f"seidr_a{n}" for n in range(len(function.parameters))]
            target = (f"+[]({function.parameter_list(names)}) -> {function.returns.strip()} "
                      f"{{ {entry} return {function.name}({', '.join(names)}); }}")
        cases.append(f"            case {k}: seidr_server::serve<decltype(seidr_signature_{k})>::call({target}, in, out);"
                     " return true;")
    parts += ["int main() {", "    return seidr_server::run([](std::size_t index, seidr_wire::Reader &in, "
              "seidr_wire::Writer &out) {", "        switch (index) {", *cases, "        }", "        return false;",
              "    });", "}"]
    return "\n".join(parts) + "\n"


def _called_functions(code: str, header: str, tests: Sequence[tuple[str, int]]) -> list[tuple[Function, str]]:
    """(function, declaration) of each function the program defines at file level and the tests
    call (and do not define themselves), as the checker and the server declare it: its declarator
    without attributes and specifiers, the program's type aliases (`typedef`, `using X =`,
    `#define ll long long`) spelled out; left out when it holds anything but names, types and
    simple default arguments."""
    masked = mask(code)
    test_text = mask(header + "\n".join(body for body, _ in tests))
    called = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", test_text))
    own = {f.name for f in top_level_functions(mask(header))} | {"main"}
    aliases = _type_aliases(masked)
    found = []
    for function in top_level_functions(masked):
        if function.name not in called or function.name in own:
            continue
        declaration = _declarator(masked[function.start:function.open_brace], function.name, aliases)
        if declaration is not None:
            found.append((function, declaration))
    return found


def _declarator(head: str, name: str, aliases: dict[str, str]) -> str | None:
    """`head` (the masked text of a definition before its `{`) as a plain declaration: attributes
    and specifiers dropped, `aliases` spelled out; None when it holds anything but names, types and
    simple default arguments, or is a template (no one signature to call across processes)."""
    head = " ".join(head.split())
    head = re.sub(r"\[\[[^\[\]]*\]\]|\b__attribute__\s*\(\([^()]*(\([^()]*\)[^()]*)*\)\)", " ", head)
    head = re.sub(r"\b(static|inline|constexpr|extern|virtual)\b\s*", "", head)
    head = re.sub(r"\s*\bnoexcept\s*$", "", head).strip()
    for _ in range(4):  # aliases of aliases
        head = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: aliases.get(m.group(), m.group()), head)
    opening = head.find("(")
    if opening <= 0 or not head.endswith(")"):
        return None
    name_part, params = head[:opening].rstrip(), head[opening + 1:-1]
    if not name_part.endswith(name) or "::" in name_part[-len(name) - 2:] or name_part.startswith("template"):
        return None
    if _SAFE_HEAD.fullmatch(name_part) and _SAFE_PARAMS.fullmatch(params):
        return f"{name_part}({params})"
    return None


@dataclass(frozen=True)
class Task:
    """What the dataset, not the program, says about a function task: the entry point's signature
    (the one function of the program the checker calls), the helper code the prompt defines
    before it (HumanEval-X's `poly`, `encode_cyclic`), compiled into the checker from the dataset,
    and the dataset's `#include` lines the checker adds to the prompt's. A program's own `poly`
    that always returns 0 must not judge its `find_zero`, a program that defines `rand` must not
    choose the tests' random inputs, and a program's headers must not decide what the tests'
    calls mean."""

    entry: Signature
    helpers: str
    includes: tuple[str, ...] = ()


def task(signature_text: str, entry_point: str, preamble: str = "") -> Task | None:
    """The Task of a prompt ending in the entry point's opening line (HumanEval-X's prompt and
    declaration do), with the system headers the dataset's `preamble` includes (HumanEval-X's
    declaration includes more than its prompt); None when the prompt holds no such function."""
    masked = mask(signature_text)
    entry = next((f for f in reversed(top_level_functions(masked)) if f.name == entry_point), None)
    if entry is None:
        return None
    # the prompt's type aliases spelled out: the server's translation unit does not have them
    declaration = _declarator(masked[entry.start:entry.open_brace], entry_point, _type_aliases(masked))
    parsed = signature(declaration, entry_point) if declaration else None
    if parsed is None:
        return None
    return Task(parsed, signature_text[:entry.start], tuple(_library_includes(preamble)))


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


