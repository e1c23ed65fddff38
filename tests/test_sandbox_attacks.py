"""Hostile programs against the sandbox, at both isolation levels: each one tries to stall the
harness, outlive its test, leave state for a later program, raise its own limits, reach the
processes that judge it, or reach the host. Each test fails when the protection it names is gone."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=30)
ROOT = os.geteuid() == 0
LEVELS = ["process", pytest.param("namespace", marks=pytest.mark.skipif(
    not bwrap_works() and not os.environ.get("CI"),
    reason="bubblewrap is not installed or cannot make namespaces here"))]
# the increment task: a program that attacks on input 1 only and answers the rest honestly
TESTS = [Example("1\n", "2\n"), Example("2\n", "3\n"), Example("3\n", "4\n")]
HONEST_TAIL = "print(n + 1)\n"


@pytest.fixture(params=LEVELS)
def isolation(request) -> str:
    return request.param


def run(code: str, isolation: str, tests=TESTS, limits: ExecutionLimits = LIMITS):
    """Outcomes of `code` on `tests` (stdin/stdout) and the seconds the run took."""
    executor = PythonExecutor(Sandbox(limits, isolation=isolation))
    started = time.monotonic()
    outcomes = asyncio.run(executor.run(code, list(tests), "stdio"))
    return outcomes, time.monotonic() - started


def printed(code: str, isolation: str) -> str:
    """What `code` printed on one test (its verdict aside): the attack's own report."""
    outcomes, _ = run(code, isolation, tests=[Example("1\n", "")])
    return outcomes[0].actual


# The worker that runs a Python program reports each test on a pipe the program can write too.
REPORT_PIPES = ("import os, stat\n"
                "pipes = [fd for fd in range(3, 64) if os.path.exists(f'/proc/self/fd/{fd}') and "
                "stat.S_ISFIFO(os.fstat(fd).st_mode)]\n")


@pytest.mark.parametrize("flood", [
    # megabytes with no end of line: the harness once buffered all of it, and its clock never ran
    "os.write(fd, b'x' * 65536)",
    # endless well-formed lines for no test: the harness skipped them, and its clock never ran
    "os.write(fd, b'{\"i\": -1}\\n' * 4096)",
])
def test_flooding_the_report_pipe_costs_one_test(isolation, flood):
    """Guards the report pipe's line cap and the deadline checked while data keeps coming
    (harness.watch_worker): without them this test ran until the run's whole 30 s budget and
    no later test got a verdict."""
    code = REPORT_PIPES + f"n = int(input())\nwhile n == 1:\n    for fd in pipes:\n        {flood}\n" + HONEST_TAIL
    outcomes, took = run(code, isolation)
    assert outcomes[0].status in ("error", "timeout")
    assert [o.status for o in outcomes[1:]] == ["pass", "pass"]
    assert took < 15


def test_garbage_on_the_report_pipe_fails_only_that_test(isolation):
    """Guards the harness's parsing of its worker's lines: a line that is not a result once
    crashed the harness, and every later test was lost."""
    code = REPORT_PIPES + "n = int(input())\nif n == 1:\n    for fd in pipes:\n" \
        "        os.write(fd, b'not a result\\n[1, 2]\\n')\n" + HONEST_TAIL
    outcomes, _ = run(code, isolation)
    assert outcomes[0].status == "error" and "report channel" in outcomes[0].error
    assert [o.status for o in outcomes[1:]] == ["pass", "pass"]


def attempts(checks: dict[str, str]) -> str:
    """A program that tries each of `checks` (name: one statement) and prints, one line each,
    `name ok` when it worked or `name refused <error>` when it raised."""
    lines = ["import ctypes, os, resource, socket, glob", "libc = ctypes.CDLL(None, use_errno=True)",
             "def check(name, action):", "    try:", "        action()",
             "    except BaseException as error:", "        print(name, 'refused', type(error).__name__)",
             "    else:", "        print(name, 'ok')",
             "def syscall(*args):", "    if libc.syscall(*args) < 0:",
             "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))"]
    lines += [f"check({name!r}, lambda: {statement})" for name, statement in checks.items()]
    return "\n".join(lines) + "\n"


def worked(report: str) -> list[str]:
    """The names of the checks an `attempts` program printed as done."""
    return [line.split()[0] for line in report.splitlines() if line.endswith(" ok")]


def tried(report: str) -> int:
    return sum(1 for line in report.splitlines() if " ok" in line or " refused " in line)


# the kernel's keyrings: add_key and keyctl (x86_64 numbers; -4 is the user keyring, -3 the
# session keyring, 10 KEYCTL_SEARCH)
KEYRING = {
    "add_key_user": "syscall(248, b'user', b'seidr-left', b'data', 4, ctypes.c_int(-4))",
    "add_key_session": "syscall(248, b'user', b'seidr-left', b'data', 4, ctypes.c_int(-3))",
    "search_user_keyring": "syscall(250, 10, ctypes.c_int(-4), b'user', b'seidr-left', 0)",
}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the system call numbers here are x86_64's")
def test_a_program_cannot_leave_data_in_the_kernel_keyring(isolation):
    """Guards the seccomp filter's refusal of add_key/request_key/keyctl (harness.py): a run
    user's keyring is not namespaced and outlives its processes, so a key added by one run
    could be read by a later program of the same uid at either level."""
    report = printed(attempts(KEYRING), isolation)
    assert tried(report) == len(KEYRING), report
    assert worked(report) == [], report

