"""A known-correct and a known-wrong program through the real executor before any budget is
spent: if their verdicts are not exactly pass and wrong, the machine (sandbox, interpreter,
compiler) is at fault, and a run would score every program as failing for the machine's sake.

Function tasks go through a protocol of their own, which can break where stdin/stdout programs
still work: in Python the tests run in seidr's harness outside the program's process, calling the
program's function through a proxy with only the prompt's preamble (see harness.py); in C++ seidr's
checker calls the program's functions in the program's own process, each test reporting with a
per-run secret (see cpp_protocol.py: a toolchain that cannot link a separately compiled object, a
sandbox that drops the secret's descriptor). Each language gets a pair of function canaries too."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import Any, Sequence

from seidr.errors import SandboxBroken
from seidr.problem import Example, TestMode

log = logging.getLogger("seidr.execution")

# Each canary reads a number and prints twice it; the wrong one is off by one. The right ones
# use modules a program would import, so a standard library the run user cannot read shows.
CANARIES = {
    "python": (
        "import collections, copy, fractions, heapq, itertools, math, re\n"
        "n = int(input())\n"
        "print(copy.deepcopy(collections.Counter({n: 2}))[n] * n + math.floor(fractions.Fraction(0)))\n",
        "n = int(input())\nprint(2 * n + 1)\n",
    ),
    "cpp": (
        "#include <iostream>\n#include <string>\n#include <vector>\n"
        "int main() { long long n; std::cin >> n; std::vector<long long> v{n, n};\n"
        "  std::cout << v[0] + v[1] << std::endl; return 0; }\n",
        "#include <iostream>\nint main() { long long n; std::cin >> n; std::cout << 2 * n + 1 << std::endl; }\n",
    ),
}
TESTS = (Example("21\n", "42\n"), Example("-5\n", "-10\n"))
# The same for a function task. Python (HumanEval's shape): each test an assert on the function,
# run beside the prompt's preamble, which the program's code also starts with (as seidr prepends it)
FUNCTION_PREAMBLE = {"python": "from typing import List\n\n\n", "cpp": ""}
PYTHON_FUNCTION_TESTS = (Example("candidate = twice\nassert candidate(21) == 42\n"),
                         Example("candidate = twice\nassert candidate(-5) == -10\n"))
FUNCTION_CANARIES = {
    "python": (
        # List (a def-time annotation) comes from the preamble, as in a HumanEval program
        "import collections, copy, fractions, math\n\n\ndef twice(n: int, extra: List[int] = ()) -> int:\n"
        "    return copy.deepcopy(collections.Counter({n: 2}))[n] * n + math.floor(fractions.Fraction(0)) "
        "+ len(extra)\n",
        "def twice(n: int) -> int:\n    return 2 * n + 1\n",
    ),
    "cpp": (
        "#include <vector>\nlong long twice(long long n) {\n    std::vector<long long> v{n, n};\n"
        "    return v[0] + v[1];\n}\n",
        "#include <vector>\nlong long twice(long long n) {\n    return 2 * n + 1;\n}\n",
    ),
}
# C++ (HumanEval-X's shape): the task's prompt, as a dataset gives it (the checker calls the program
# with this signature), and each test a file whose main() asserts
FUNCTION_SIGNATURE = "#include <vector>\n// twice the number\nlong long twice(long long n) {\n"
FUNCTION_TESTS = (Example("#include <cassert>\nint main() {\n    assert(twice(21) == 42);\n}\n"),
                  Example("#include <cassert>\nint main() {\n    assert(twice(-5) == -10);\n}\n"))


async def preflight(executor: Any, modes: Sequence[TestMode] = ("stdio", "function")) -> float:
    """Check that the executor passes a right program and fails a wrong one on plain wrong
    answers, for each of `modes` (the kinds of task a run will judge) that has canaries in the
    executor's language; returns the seconds it took. Raises SandboxBroken naming what went wrong."""
    started = time.monotonic()
    language = executor.language
    sandbox = executor.sandbox
    where = f"execution.isolation={sandbox.isolation}, " + (
        f"compiler {executor.compiler}" if language == "cpp" else f"python {sandbox.python}")
    if language == "cpp" and shutil.which(executor.compiler) is None:
        raise SandboxBroken(f"the C++ compiler {executor.compiler} is not installed (apt-get install g++, or set "
                            "execution.cpp.compiler)", retryable=False)
    checks: list[tuple[TestMode, str, str, tuple[Example, ...]]] = []
    if "stdio" in modes:
        right, wrong = CANARIES[language]
        checks += [("stdio", right, "pass", TESTS), ("stdio", wrong, "wrong", TESTS)]
    if "function" in modes and language in FUNCTION_CANARIES:
        right, wrong = FUNCTION_CANARIES[language]
        preamble = FUNCTION_PREAMBLE[language]
        tests = PYTHON_FUNCTION_TESTS if language == "python" else FUNCTION_TESTS
        checks += [("function", preamble + right, "pass", tests), ("function", preamble + wrong, "wrong", tests)]
    # at once: a C++ canary is mostly compiling, and the compiles are independent
    results = await asyncio.gather(*(
        executor.run(code, tests, mode, entry_point="twice",
                     **({"signature": FUNCTION_SIGNATURE, "preamble": FUNCTION_PREAMBLE[language]}
                        if mode == "function" else {}))
        for mode, code, _, tests in checks))
    for (mode, _, expected, _), outcomes in zip(checks, results):
        bad = next((o for o in outcomes if o.status != expected), None)
        if bad is not None:
            said = " ".join((bad.error or bad.actual or "nothing").split())[:300]
            kind = "known-correct" if expected == "pass" else "known-wrong"
            task = "stdin/stdout" if mode == "stdio" else "function-task"
            raise SandboxBroken(
                f"sandbox check failed ({where}): a {kind} {language} {task} program got {bad.status!r}, not "
                f"{expected!r} ({said}); the machine, not the model, is at fault: fix it (README: Sandbox), or set "
                "execution.isolation=process|namespace or execution.python", retryable=False)
    seconds = time.monotonic() - started
    log.info("sandbox check passed (%s) in %.2f s", where, seconds)
    return seconds
