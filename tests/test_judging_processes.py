"""A program may not signal, stop, renice, pin or re-schedule the processes that judge it: the
supervisor (the harness, its PID namespace's init), the process that runs a Python function
task's tests, and a C++ function task's checker (which runs as the program's user and is not an
init). Each program here tries every such way against the process that judges it, then answers
honestly only when all of them were refused: its verdicts must be those of an honest program, at
both isolation levels, for Python and C++, stdin/stdout and function tasks. A way that works ends
in a wrong answer (or a timeout, or a crash of the checker) and fails the test.

Guards: the harness's seccomp filter (harness.seccomp_filter: setpriority, ioprio_set and the
sched_* calls on another process), the C++ server's (cpp_runtime/seidr_checker.cpp: ServerFilter:
signals to the checker), and a session of its own for every process that runs program code (the
stdio worker, a compiled program, the function callee, the C++ server): a session is the kernel's
scheduling autogroup, whose priority any process of it may lower."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution.cpp import CppExecutor
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example
from tests.ci import needs

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=60, compile_timeout_s=60)
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(), "bubblewrap is not installed or cannot make namespaces here"))]
x86_64_only = needs(os.uname().machine == "x86_64", "the system call numbers here are x86_64's")
TESTS = [Example("1\n", "2\n"), Example("2\n", "3\n"), Example("3\n", "4\n")]


@pytest.fixture(params=LEVELS)
def isolation(request) -> str:
    return request.param


# Every way to slow or stop `target` (its autogroup's priority too), tried in order; `reached`
# lists those that went through.
# Signals last (a supervisor that is its namespace's init ignores them: the verdict shows it).
# Then what a program may do to itself and its own child, which must still work.
PY_ATTACKS = """
import ctypes, fcntl, os, signal
libc = ctypes.CDLL(None, use_errno=True)

def syscall(*args):
    if libc.syscall(*args) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

def idle_attributes():
    attributes = (ctypes.c_uint32 * 12)()
    attributes[0], attributes[1] = 48, 5  # sched_attr's size, SCHED_IDLE
    return attributes

def owner_of_sigio(target, owner):
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(read_end, fcntl.F_SETOWN, owner)
        fcntl.fcntl(read_end, 10, signal.SIGSTOP)  # F_SETSIG
        fcntl.fcntl(read_end, fcntl.F_SETFL, os.O_ASYNC)
        os.write(write_end, b'x')
    finally:
        os.close(read_end)
        os.close(write_end)

def attack(target):
    uid = os.getuid()
    ways = {
        'setpriority': lambda: os.setpriority(os.PRIO_PROCESS, target, 19),
        'setpriority_group': lambda: os.setpriority(os.PRIO_PGRP, 0, 19),
        'setpriority_user': lambda: os.setpriority(os.PRIO_USER, uid, 19),
        'sched_setaffinity': lambda: os.sched_setaffinity(target, {0}),
        'sched_setscheduler': lambda: os.sched_setscheduler(target, os.SCHED_IDLE, os.sched_param(0)),
        'sched_setparam': lambda: os.sched_setparam(target, os.sched_param(0)),
        'sched_setattr': lambda: syscall(314, target, idle_attributes(), 0),
        'ioprio_set': lambda: syscall(251, 1, target, 3 << 13),
        'ioprio_set_user': lambda: syscall(251, 3, uid, 3 << 13),
    }
    reached = []
    # the kernel's autogroup: the processes after one setsid() share one priority, which any may lower
    try:
        with open('/proc/self/autogroup', 'w') as autogroup:
            autogroup.write('19')
    except OSError:
        pass
    with open(f'/proc/{target}/autogroup') as autogroup:
        if not autogroup.read().rstrip().endswith(' nice 0'):
            reached.append('autogroup')
    for name, way in ways.items():
        try:
            way()
            reached.append(name)
        except OSError:
            pass
    for way in (lambda: owner_of_sigio(target, target), lambda: os.kill(target, signal.SIGSTOP),
                lambda: os.kill(target, signal.SIGINT), lambda: os.kill(target, signal.SIGTERM),
                lambda: os.kill(target, signal.SIGKILL)):
        try:
            way()
        except OSError:
            pass
    # its own: a lower priority, its CPUs as they are, a child it stops and kills
    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))
    os.sched_setaffinity(0, os.sched_getaffinity(0))
    child = os.fork()
    if child == 0:
        signal.pause()
        os._exit(0)
    os.kill(child, signal.SIGSTOP)
    os.kill(child, signal.SIGKILL)
    if os.waitpid(child, 0)[1] != signal.SIGKILL:
        reached.append('its own child was not killed')
    return reached
"""


def python_run(code: str, isolation: str, tests, mode: str = "stdio", **options):
    executor = PythonExecutor(Sandbox(LIMITS, isolation=isolation))
    started = time.monotonic()
    outcomes = asyncio.run(executor.run(code, list(tests), mode, **options))
    return outcomes, time.monotonic() - started


@x86_64_only
def test_a_python_stdio_program_cannot_slow_or_stop_its_supervisor(isolation):
    code = PY_ATTACKS + "reached = attack(os.getppid())\nn = int(input())\nprint(n + 1 if not reached else reached)\n"
    outcomes, seconds = python_run(code, isolation, TESTS)
    assert [o.status for o in outcomes] == ["pass"] * len(TESTS), [o.actual for o in outcomes]
    assert seconds < LIMITS.total_timeout_s / 2


@x86_64_only
def test_a_python_function_program_cannot_slow_or_stop_the_process_that_runs_its_tests(isolation):
    """The program runs in a process of its own, the tests in the supervisor, its parent."""
    from tests.test_exploits import load_add_problem

    problem = load_add_problem()
    code = problem.preamble + PY_ATTACKS + ("def add(x, y):\n    reached = attack(os.getppid())\n"
                                            "    return x + y if not reached else reached\n")
    outcomes, seconds = python_run(code, isolation, problem.valid, "function", entry_point=problem.entry_point,
                                   preamble=problem.preamble)
    assert [o.status for o in outcomes] == ["pass"] * len(problem.valid), [o.error for o in outcomes]
    assert seconds < LIMITS.total_timeout_s / 2


# The same in C++, with every way a signal can reach another process of the same user: kill to
# the process, its group, the caller's group and everyone; tkill, tgkill, rt_sigqueueinfo,
# rt_tgsigqueueinfo; pidfd_send_signal through pidfd_open and through a /proc folder; a file whose
# SIGIO (changed to SIGSTOP) goes to the process or its group. Signals count as reached only when
# `signals` is set (sent to the namespace's init they succeed and do nothing); signals to groups
# are sent only then.
CPP_ATTACKS = r"""
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int seidr_reached = 0;

static void seidr_try(const char *name, long result, bool counts = true) {
    if (result >= 0 && counts) {
        fprintf(stderr, "%s went through\n", name);
        seidr_reached++;
    }
}

static long seidr_sigio(pid_t owner) {
    int ends[2];
    if (pipe(ends) != 0) return -1;
    long set = fcntl(ends[0], F_SETOWN, owner);
    fcntl(ends[0], F_SETSIG, SIGSTOP);
    fcntl(ends[0], F_SETFL, O_ASYNC);
    if (write(ends[1], "x", 1) != 1) set = -1;
    close(ends[0]);
    close(ends[1]);
    return set;
}

static void seidr_usr1(int) {}

static int seidr_attack(pid_t target, bool signals) {
    // the kernel's autogroup: the processes after one setsid() share one priority, which any may lower
    if (FILE *own = fopen("/proc/self/autogroup", "w")) {
        fputs("19", own);
        fclose(own);
    }
    char path[64], line[128] = "";
    snprintf(path, sizeof path, "/proc/%d/autogroup", (int)target);
    if (FILE *theirs = fopen(path, "r")) {
        if (!fgets(line, sizeof line, theirs)) line[0] = 0;
        fclose(theirs);
    } else {
        snprintf(line, sizeof line, "%s: %s", path, strerror(errno));
    }
    if (!strstr(line, " nice 0")) {
        fprintf(stderr, "autogroup went through: %s\n", line);
        seidr_reached++;
    }
    seidr_try("setpriority", setpriority(PRIO_PROCESS, target, 19));
    seidr_try("setpriority of the group", setpriority(PRIO_PGRP, 0, 19));
    seidr_try("setpriority of the user", setpriority(PRIO_USER, getuid(), 19));
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    seidr_try("sched_setaffinity", sched_setaffinity(target, sizeof one, &one));
    sched_param zero{};
    seidr_try("sched_setscheduler", sched_setscheduler(target, SCHED_IDLE, &zero));
    seidr_try("sched_setparam", sched_setparam(target, &zero));
    unsigned attributes[12] = {48, SCHED_IDLE};
    seidr_try("sched_setattr", syscall(SYS_sched_setattr, target, attributes, 0));
    seidr_try("ioprio_set", syscall(SYS_ioprio_set, 1, target, 3 << 13));
    seidr_try("ioprio_set of the user", syscall(SYS_ioprio_set, 3, getuid(), 3 << 13));
    seidr_try("F_SETOWN", seidr_sigio(target), signals);
    seidr_try("F_SETOWN of the group", seidr_sigio(-target), signals);
    struct { int type; pid_t pid; } owner = {0, target};
    seidr_try("F_SETOWN_EX", fcntl(0, 15, &owner), signals);
    seidr_try("FIOSETOWN", ioctl(0, 0x8901, &target), signals);
    seidr_try("tgkill", syscall(SYS_tgkill, target, target, SIGSTOP), signals);
    seidr_try("tkill", syscall(SYS_tkill, target, SIGSTOP), signals);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = SIGSTOP;
    info.si_code = SI_QUEUE;
    seidr_try("rt_sigqueueinfo", syscall(SYS_rt_sigqueueinfo, target, SIGSTOP, &info), signals);
    seidr_try("rt_tgsigqueueinfo", syscall(SYS_rt_tgsigqueueinfo, target, target, SIGSTOP, &info), signals);
    long pidfd = syscall(SYS_pidfd_open, target, 0);
    seidr_try("pidfd_open", pidfd, signals);
    char folder[32];
    snprintf(folder, sizeof folder, "/proc/%d", (int)target);
    int proc = open(folder, O_RDONLY | O_DIRECTORY);
    seidr_try("pidfd_send_signal through /proc", syscall(SYS_pidfd_send_signal, proc, SIGSTOP, nullptr, 0), signals);
    if (pidfd >= 0) close(static_cast<int>(pidfd));
    if (proc >= 0) close(proc);
    if (signals) {  // to groups and everyone (which at the top level holds the caller's own processes)
        seidr_try("kill of the group", kill(-target, SIGSTOP));
        seidr_try("kill -1", kill(-1, SIGSTOP));
        // its own group, which must not hold `target`: a SIGTERM it ignores itself
        signal(SIGTERM, SIG_IGN);
        kill(0, SIGTERM);
        signal(SIGTERM, SIG_DFL);
    }
    seidr_try("kill", kill(target, SIGSTOP), signals);
    seidr_try("kill SIGKILL", kill(target, SIGKILL), signals);
    // its own: a lower priority, its CPUs as they are, a signal to itself, a child it stops and kills
    cpu_set_t mine;
    if (setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0)) != 0 ||
        sched_getaffinity(0, sizeof mine, &mine) != 0 || sched_setaffinity(0, sizeof mine, &mine) != 0) {
        fprintf(stderr, "its own priority or CPUs refused\n");
        seidr_reached++;
    }
    signal(SIGUSR1, seidr_usr1);
    if (raise(SIGUSR1) != 0) seidr_reached++;
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    int status = 0;
    if (kill(child, SIGSTOP) != 0 || kill(child, SIGKILL) != 0 || waitpid(child, &status, 0) != child ||
        !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "its own child was not killed\n");
        seidr_reached++;
    }
    return seidr_reached;
}
"""


def cpp_executor(isolation: str) -> CppExecutor:
    return CppExecutor(Sandbox(LIMITS, isolation=isolation))


def test_a_cpp_function_program_cannot_slow_or_stop_its_checker_or_supervisor(isolation):
    """The server (the program) attacks the checker, its parent, which runs as the same user,
    and the supervisor (the namespace's init)."""
    from tests.test_cpp_exploits import load_add_problem

    problem = load_add_problem()
    code = problem.preamble + CPP_ATTACKS + ("int add(int x, int y) {\n    int reached = seidr_attack(getppid(), true);\n"
                                             "    reached += seidr_attack(1, false);\n"
                                             "    return reached == 0 ? x + y : -1;\n}\n")
    started = time.monotonic()
    outcomes = asyncio.run(cpp_executor(isolation).run(code, problem.valid, "function",
                                                       entry_point=problem.entry_point, signature=problem.signature,
                                                       preamble=problem.preamble))
    seconds = time.monotonic() - started
    assert [o.status for o in outcomes] == ["pass"] * len(problem.valid), [(o.error, o.actual) for o in outcomes]
    assert seconds < LIMITS.total_timeout_s


def test_a_cpp_stdio_program_cannot_slow_or_stop_its_supervisor(isolation):
    code = CPP_ATTACKS + ("int main() {\n    int n = 0;\n    if (scanf(\"%d\", &n) != 1) return 1;\n"
                          "    int reached = seidr_attack(getppid(), false);\n"
                          "    if (reached == 0) printf(\"%d\\n\", n + 1);\n    return 0;\n}\n")
    outcomes = asyncio.run(cpp_executor(isolation).run(code, TESTS, "stdio"))
    assert [o.status for o in outcomes] == ["pass"] * len(TESTS), [(o.error, o.actual) for o in outcomes]
