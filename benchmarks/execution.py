"""How fast programs are scored: a correct PSB2 solution (fizz-buzz) on 2,000 tests, batched in
one sandbox run versus one process per test (the original SEIDR's way), for Python and C++ (one
compile versus one compile per test). The per-test ways are timed on a sample and scaled up, so
the benchmark ends in about a minute. Also: the sandbox's overhead over a bare subprocess.

    python -m benchmarks.execution
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seidr.data.psb2 import PSB2Dataset  # noqa: E402
from seidr.execution.base import ExecutionLimits  # noqa: E402
from seidr.execution.cpp import CppExecutor  # noqa: E402
from seidr.execution.python import PythonExecutor  # noqa: E402
from seidr.execution.sandbox import Sandbox, bwrap_works  # noqa: E402
from tests.conftest import find_data_dir  # noqa: E402

PYTHON = ("x = int(input())\nprint('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else "
          "'Buzz' if x % 5 == 0 else x)\n")
CPP = ("#include <iostream>\nint main() { long x; std::cin >> x;\n"
       "  if (x % 15 == 0) std::cout << \"FizzBuzz\"; else if (x % 3 == 0) std::cout << \"Fizz\";\n"
       "  else if (x % 5 == 0) std::cout << \"Buzz\"; else std::cout << x;\n  std::cout << std::endl; }\n")
SAMPLE = 40  # tests timed the per-test way, scaled up to the full count


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def per_test_python(tests) -> float:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "program.py"
        script.write_text(PYTHON)
        seconds, _ = timed(lambda: [subprocess.run([sys.executable, str(script)], input=t.input, capture_output=True,
                                                   text=True, timeout=10) for t in tests[:SAMPLE]])
    return seconds / SAMPLE * len(tests)


def per_test_cpp(tests) -> float:
    with tempfile.TemporaryDirectory() as folder:
        source, binary = Path(folder) / "program.cpp", Path(folder) / "program"
        source.write_text(CPP)

        def compile_and_run(test):
            subprocess.run(["g++", "-std=c++17", "-O2", "-o", str(binary), str(source)], check=True)
            subprocess.run([str(binary)], input=test.input, capture_output=True, text=True, timeout=10)

        sample = 5  # compiling is slow: a smaller sample
        seconds, _ = timed(lambda: [compile_and_run(t) for t in tests[:sample]])
    return seconds / sample * len(tests)


def bare_subprocess(tests) -> float:
    """One plain `python3 program.py` over all the tests in one process: no sandbox at all."""
    batch = "import sys\nfor line in sys.stdin.read().split('\\n')[:-1]:\n    x = int(line)\n" \
            "    print('FizzBuzz' if x % 15 == 0 else 'Fizz' if x % 3 == 0 else 'Buzz' if x % 5 == 0 else x)\n"
    text = "".join(t.input for t in tests)
    seconds, _ = timed(lambda: subprocess.run([sys.executable, "-c", batch], input=text, capture_output=True,
                                              text=True, check=True))
    return seconds


def main() -> None:
    data = find_data_dir()
    if data is None:
        sys.exit("no data: set DATA_PATH (see README)")
    problem = PSB2Dataset(data / "psb2").load("fizz-buzz", seed=0, valid_examples=0, test_examples=2000)
    tests = list(problem.test)
    print(f"fizz-buzz, {len(tests)} tests, {os.cpu_count()} cores, root={os.geteuid() == 0}")
    levels = ["process"] + (["namespace"] if bwrap_works() else [])
    for level in levels:
        sandbox = Sandbox(ExecutionLimits(total_timeout_s=300), isolation=level)
        py_s, outcomes = timed(lambda: asyncio.run(PythonExecutor(sandbox).run(PYTHON, tests, "stdio")))
        assert all(o.passed for o in outcomes)
        cpp = CppExecutor(sandbox)
        cpp_s, outcomes = timed(lambda: asyncio.run(cpp.run(CPP, tests, "stdio")))
        assert all(o.passed for o in outcomes)
        cached_s, _ = timed(lambda: asyncio.run(cpp.run(CPP, tests, "stdio")))
        print(f"[{level:9}] Python batched: {py_s:5.2f} s ({len(tests) / py_s:7.0f} tests/s)   "
              f"C++ compile once + run: {cpp_s:5.2f} s ({len(tests) / cpp_s:5.0f} tests/s; "
              f"{cached_s:.2f} s with the binary cached)")
    per_py = per_test_python(tests)
    per_cpp = per_test_cpp(tests)
    print(f"one process per test (scaled from a sample): Python {per_py:6.1f} s, C++ with a compile per test "
          f"{per_cpp:6.1f} s")
    print(f"speed-up of the batched way: Python {per_py / py_s:5.0f}x, C++ {per_cpp / cpp_s:5.0f}x")
    bare = bare_subprocess(tests)
    print(f"sandbox overhead: a bare unsandboxed python3 over all tests in one process takes {bare:.2f} s; "
          f"the sandboxed batched run {py_s:.2f} s (+{py_s - bare:.2f} s)")


if __name__ == "__main__":
    main()
