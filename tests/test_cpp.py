"""C++ programs: one compile per source, the binary run per test, in the same sandbox."""

from __future__ import annotations

import asyncio
import os

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution.cpp import CppExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example

LIMITS = ExecutionLimits(test_timeout_s=1, test_cpu_s=1, total_timeout_s=20, compile_timeout_s=30)
DOUBLE = [Example(f"{n}\n", f"{2 * n}\n") for n in range(3)]
GOOD = "#include <iostream>\nint main() { long n; std::cin >> n; std::cout << 2 * n << std::endl; }\n"
# under CI a missing dependency that setup installs must fail, not skip (.ci/run sets CI)
LEVELS = ["process", pytest.param("namespace", marks=pytest.mark.skipif(
    not bwrap_works() and not os.environ.get("CI"), reason="bubblewrap is not installed or cannot make namespaces here"))]


@pytest.fixture(params=LEVELS)
def level(request) -> str:
    return request.param


@pytest.fixture
def cpp(level):
    return CppExecutor(Sandbox(LIMITS, isolation=level))


def run(executor, code, tests=DOUBLE):
    return asyncio.run(executor.run(code, tests, "stdio"))


def test_correct_program_passes_and_partial_credit_counts_lines(cpp):
    assert [o.status for o in run(cpp, GOOD)] == ["pass"] * 3
    [outcome] = run(cpp, "#include <cstdio>\nint main() { puts(\"1\"); puts(\"2\"); puts(\"4\"); }\n",
                    [Example("\n", "1\n2\n3\n")])
    assert outcome.status == "wrong" and outcome.score == pytest.approx(2 / 3)


def test_compile_error_is_a_verdict_with_the_compilers_first_lines(cpp):
    outcomes = run(cpp, "int main() { return undeclared; }\n")
    assert [o.status for o in outcomes] == ["compile"] * 3
    assert "undeclared" in outcomes[0].error and "error" in outcomes[0].error
    assert outcomes[0].error.count("\n") < 15


def test_one_compile_per_source_with_all_its_tests(cpp):
    """A source is compiled once and its binary reused by later runs; a function-mode program
    is compiled once, and all of its tests run in one sandbox run."""
    jobs = []
    sandbox_run = cpp.sandbox.run

    async def recording(job, *args, **kwargs):
        jobs.append(job)
        return await sandbox_run(job, *args, **kwargs)

    cpp.sandbox.run = recording
    assert [o.status for o in run(cpp, GOOD)] == ["pass"] * 3
    assert [o.status for o in run(cpp, GOOD, [Example("5\n", "10\n")])] == ["pass"]
    tests = [Example(f"#include <cassert>\nint main() {{ assert(twice({n}) == {2 * n}); }}\n")
             for n in range(4)]
    outcomes = asyncio.run(cpp.run("int twice(int n) { return n == 3 ? 0 : 2 * n; }\n", tests, "function"))
    assert [o.status for o in outcomes] == ["pass", "pass", "pass", "wrong"]
    compiles = [job for job in jobs if "compile" in job]
    runs = [job for job in jobs if "compile" not in job]
    # compiling is a sandbox run of its own, in which no program code runs (run: False)
    assert all(job["run"] is False for job in compiles)
    # GOOD compiled once for both calls; the function task compiled as two units: program and test driver
    assert len(compiles) == 3
    assert [len(job["tests"]) for job in runs] == [3, 1, 4]
    assert [bool(job.get("report")) for job in runs] == [False, False, True]  # function tests report to seidr


def test_crashes_timeouts_and_floods_are_verdicts(cpp):
    assert run(cpp, "int main() { int *p = nullptr; *p = 1; }\n", DOUBLE[:1])[0].error.endswith("SIGSEGV")
    assert run(cpp, "int main() { while (true) {} }\n", DOUBLE[:1])[0].status == "timeout"
    flood = "#include <iostream>\nint main() { while (true) std::cout << \"xxxxxxxxxxxxxxxx\"; }\n"
    assert run(cpp, flood, DOUBLE[:1])[0].status == "output_limit"
    outcome = run(cpp, "int main() { return 3; }\n", DOUBLE[:1])[0]
    assert outcome.status == "error" and "status 3" in outcome.error


def test_a_binary_past_its_cpu_seconds_is_stopped_by_sigxcpu(level):
    """The wall clock per test is far above the CPU limit; the program reports the SIGXCPU that
    stops it, then dies of it."""
    limits = ExecutionLimits(test_timeout_s=30, test_cpu_s=1, total_timeout_s=60, compile_timeout_s=30)
    code = ("#include <csignal>\n#include <iostream>\n#include <unistd.h>\n"
            "extern \"C\" void on_xcpu(int) {\n"
            "  write(1, \"SIGXCPU\\n\", 8); signal(SIGXCPU, SIG_DFL); raise(SIGXCPU); }\n"
            "int main() { long n; std::cin >> n; signal(SIGXCPU, on_xcpu); volatile long spins = 0;\n"
            "  while (n == 0) spins++; std::cout << 2 * n << std::endl; }\n")
    outcomes = run(CppExecutor(Sandbox(limits, isolation=level)), code)
    assert [o.status for o in outcomes] == ["timeout", "pass", "pass"] and outcomes[0].actual == "SIGXCPU\n"
    assert outcomes[0].error == "used up its CPU time"


def test_a_file_past_max_file_bytes_is_an_output_limit(cpp):
    """SIGXFSZ on a file the program writes (not its stdout, which stays empty) is output_limit."""
    code = ("#include <cstdio>\n#include <iostream>\nint main() { long n; std::cin >> n;\n"
            "  if (n == 0) { FILE *f = fopen(\"big\", \"wb\");\n"
            f"    for (long i = 0; i <= {LIMITS.max_file_bytes}; i++) fputc('x', f);\n"
            "    fclose(f); }\n  std::cout << 2 * n << std::endl; }\n")
    outcomes = run(cpp, code)
    assert [o.status for o in outcomes] == ["output_limit", "pass", "pass"] and outcomes[0].actual == ""


def test_a_template_bomb_is_stopped_by_the_compile_limits():
    limits = ExecutionLimits(test_timeout_s=1, total_timeout_s=10, compile_timeout_s=3, compile_memory_mb=1024)
    bomb = ("#include <utility>\ntemplate <class T, int N> struct Grow { using type = typename "
            "Grow<std::pair<T, T>, N - 1>::type; };\ntemplate <class T> struct Grow<T, 0> { using type = T; };\n"
            "int main() { Grow<int, 40>::type x{}; (void)x; }\n")
    executor = CppExecutor(Sandbox(limits, isolation="process"))
    [outcome] = run(executor, bomb, DOUBLE[:1])
    assert outcome.status == "compile"


def test_float_tolerance_is_off_by_default_and_on_when_asked():
    third = [Example("\n", "0.3333333333333333\n")]
    code = "#include <cstdio>\nint main() { printf(\"%.5f\\n\", 1.0 / 3); }\n"
    strict = CppExecutor(Sandbox(LIMITS, isolation="process"))
    assert run(strict, code, third)[0].status == "wrong"
    tolerant = CppExecutor(Sandbox(LIMITS, isolation="process"), float_tolerance=1e-4)
    assert run(tolerant, code, third)[0].status == "pass"
    too_strict = CppExecutor(Sandbox(LIMITS, isolation="process"), float_tolerance=1e-6)  # off by 3.3e-6
    assert run(too_strict, code, third)[0].status == "wrong"
