"""A known-correct and a known-wrong program through the real executor before any budget is
spent: if their verdicts are not exactly pass and wrong, the machine (sandbox, interpreter,
compiler) is at fault, and a run would score every program as failing for the machine's sake."""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from seidr.errors import SandboxBroken
from seidr.problem import Example

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


async def preflight(executor: Any) -> float:
    """Check that the executor passes a right program and fails a wrong one on plain wrong
    answers; returns the seconds it took. Raises SandboxBroken naming what went wrong."""
    started = time.monotonic()
    right, wrong = CANARIES[executor.language]
    sandbox = executor.sandbox
    where = f"execution.isolation={sandbox.isolation}, " + (
        f"compiler {executor.compiler}" if executor.language == "cpp" else f"python {sandbox.python}")
    if executor.language == "cpp" and shutil.which(executor.compiler) is None:
        raise SandboxBroken(f"the C++ compiler {executor.compiler} is not installed (apt-get install g++, or set "
                            "execution.cpp.compiler)", retryable=False)
    for code, expected in ((right, "pass"), (wrong, "wrong")):
        outcomes = await executor.run(code, TESTS, "stdio")
        bad = next((o for o in outcomes if o.status != expected), None)
        if bad is not None:
            said = " ".join((bad.error or bad.actual or "nothing").split())[:300]
            kind = "known-correct" if expected == "pass" else "known-wrong"
            raise SandboxBroken(
                f"sandbox check failed ({where}): a {kind} {executor.language} program got {bad.status!r}, not "
                f"{expected!r} ({said}); the machine, not the model, is at fault: fix it (README: Sandbox), or set "
                "execution.isolation=process|namespace or execution.python", retryable=False)
    seconds = time.monotonic() - started
    log.info("sandbox check passed (%s) in %.2f s", where, seconds)
    return seconds
