"""C++ programs: one compile per source, the binary run per test, in the same sandbox."""

from __future__ import annotations

import asyncio
import os

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution.cpp import CppExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example
from tests.ci import needs

LIMITS = ExecutionLimits(test_timeout_s=1, test_cpu_s=1, total_timeout_s=20, compile_timeout_s=30)
DOUBLE = [Example(f"{n}\n", f"{2 * n}\n") for n in range(3)]
GOOD = "#include <iostream>\nint main() { long n; std::cin >> n; std::cout << 2 * n << std::endl; }\n"
# under CI a missing dependency that setup installs must fail, not skip (.ci/run sets CI)
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(), "bubblewrap is not installed or cannot make namespaces here"))]


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
    # GOOD compiled once for both calls; the function task three times: seidr's checker, the
    # server's object, and the program linked with it
    assert len(compiles) == 4
    assert [len(job["tests"]) for job in runs] == [3, 1, 4]
    assert [bool(job.get("report")) for job in runs] == [False, False, True]  # function tests report to seidr
    # another program with the same declarations shares the checker and the server's object
    outcomes = asyncio.run(cpp.run("int twice(int n) { return n + n; }\n", tests, "function"))
    assert [o.status for o in outcomes] == ["pass"] * 4
    assert len([job for job in jobs if "compile" in job]) == 5


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


# ---- function tasks: values cross between seidr's checker and the program's process whole ----

VALUES_HEADER = ("#include <cassert>\n#include <cmath>\n#include <map>\n#include <string>\n#include <vector>\n"
                 "#include <boost/any.hpp>\nusing namespace std;\n")
VALUES_TESTS = [Example(VALUES_HEADER + f"int main() {{\n{body}\n}}\n") for body in (
    # a parameter by reference to non-const comes back changed
    "    vector<int> v = {3, 1, 2};\n    sort_in_place(v);\n    assert(v == vector<int>({1, 2, 3}));",
    # floats arrive bit for bit, and NaN stays NaN
    "    assert(third(1.0f) == 1.0f / 3.0f && third(1e-40f) == 1e-40f / 3.0f);\n    assert(std::isnan(third(NAN)));",
    # strings with NUL bytes, newlines and spaces
    '    assert(echo(string("a\\0b\\n c ", 7)) == string("a\\0b\\n c ", 7) && echo("") == "");',
    # nested containers and maps
    '    auto t = table("k", 3);\n    assert(t.size() == 1 && t.at("k") == vector<double>({0.5, 1.5, 2.5}));',
    # boost::any (HumanEval-X's CPP/22 and CPP/137), empty ones included
    "    list<boost::any> in = {1, boost::any(), string(\"x\"), 2.5, 'c'};\n"
    "    assert(boost::any_cast<string>(kinds(in)) == \"i e s d c\");",
)]
VALUES = """#include <algorithm>
#include <list>
#include <map>
#include <string>
#include <vector>
#include <boost/any.hpp>
using namespace std;
void sort_in_place(vector<int> &v) { sort(v.begin(), v.end()); }
float third(float x) { return x / 3.0f; }
string echo(string s) { return s; }
map<string, vector<double>> table(string key, long long n) {
    map<string, vector<double>> out;
    for (long long i = 0; i < n; i++) out[key].push_back(i + 0.5);
    return out;
}
boost::any kinds(list<boost::any> values) {
    string seen;
    for (auto &v : values) {
        if (!seen.empty()) seen += " ";
        seen += v.empty() ? "e" : v.type() == typeid(int) ? "i" : v.type() == typeid(string) ? "s"
              : v.type() == typeid(double) ? "d" : v.type() == typeid(char) ? "c" : "?";
    }
    return seen;
}
"""


def test_values_cross_between_the_checker_and_the_program_whole(cpp):
    """The tests' code runs in seidr's checker, the program in its own process: arguments and
    returned values travel as data, and must arrive exactly (see cpp_protocol.py)."""
    outcomes = asyncio.run(cpp.run(VALUES, VALUES_TESTS, "function"))
    assert [o.status for o in outcomes] == ["pass"] * len(VALUES_TESTS), [o.error for o in outcomes]
    wrong = (VALUES.replace("sort(v.begin(), v.end());", "").replace("x / 3.0f", "x / 3.0f + 1e-9f")
             .replace("return s;", "return s.c_str();").replace("i + 0.5", "i + 0.25").replace('"c"', '"?"'))
    outcomes = asyncio.run(cpp.run(wrong, VALUES_TESTS, "function"))
    assert [o.status for o in outcomes] == ["wrong"] * len(VALUES_TESTS), [o.error for o in outcomes]
