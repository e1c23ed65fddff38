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
from seidr.execution.cgroup import DEFAULT_ROOT
from seidr.execution.sandbox import Sandbox, bwrap_works, cgroup_layout
from seidr.problem import Example
from tests.ci import needs, unavailable

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=30)
ROOT = os.geteuid() == 0
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(), "bubblewrap is not installed or cannot make namespaces here"))]
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


@needs(os.uname().machine == "x86_64", "the system call numbers here are x86_64's")
def test_a_program_cannot_leave_data_in_the_kernel_keyring(isolation):
    """Guards the seccomp filter's refusal of add_key/request_key/keyctl (harness.py): a run
    user's keyring is not namespaced and outlives its processes, so a key added by one run
    could be read by a later program of the same uid at either level."""
    report = printed(attempts(KEYRING), isolation)
    assert tried(report) == len(KEYRING), report
    assert worked(report) == [], report


LIMIT_RAISES = {name: f"resource.setrlimit(resource.{name}, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))"
                for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_CORE")}


def test_a_program_cannot_raise_its_limits(isolation):
    """Guards the hard limits of harness.apply_limits (CPU, memory, file size, processes, core
    dumps): set soft-only, a program could lift each of them."""
    report = printed(attempts(LIMIT_RAISES), isolation)
    assert tried(report) == len(LIMIT_RAISES), report
    assert worked(report) == [], report


PRIORITY = {
    "nice_minus_10": "os.setpriority(os.PRIO_PROCESS, 0, -10)",
    "sched_fifo": "os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))",
    "sched_rr": "os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))",
    # ioprio_set(IOPRIO_WHO_PROCESS, self, the real-time class)
    "ioprio_realtime": "syscall(251, 1, 0, (1 << 13) | 0)",
    # the kernel's out-of-memory killer would pick seidr before the program
    "oom_score_adj_protect": "open('/proc/self/oom_score_adj', 'w').write('-1000')",
}


@needs(ROOT, "as root only: seidr's own user could do this")
@needs(os.uname().machine == "x86_64", "the system call numbers here are x86_64's")
def test_a_program_cannot_take_priority_over_seidr(isolation):
    """Guards the privilege drop to the run user: with root's rights a real-time program
    starves seidr on a small machine (a spinning SCHED_FIFO process owns its core)."""
    report = printed(attempts(PRIORITY), isolation)
    assert tried(report) == len(PRIORITY), report
    assert worked(report) == [], report


HOST_DEVICES = {
    "dev_tty": "open('/dev/tty', 'w').write('x')",
    "dev_console": "open('/dev/console', 'w').write('x')",
    "dev_kmsg": "open('/dev/kmsg', 'w').write('seidr')",
    "a_terminal": "[open(p, 'w').write('x') for p in glob.glob('/dev/pts/[0-9]*')] and None or "
                  "(_ for _ in ()).throw(FileNotFoundError('no terminal'))",
    "sysrq": "open('/proc/sysrq-trigger', 'w').write('h')",
    "drop_caches": "open('/proc/sys/vm/drop_caches', 'w').write('1')",
    # writes back what is there: harmless even where the write goes through
    "core_pattern": "open('/proc/sys/kernel/core_pattern', 'w').write(open('/proc/sys/kernel/core_pattern').read())",
}


@needs(ROOT, "as root only: the run user is what stops this")
def test_a_program_cannot_write_to_terminals_or_the_kernel(isolation):
    """Guards the new session without a terminal and the privilege drop: a program that could
    write on seidr's terminal could forge what its user sees; one that wrote the kernel's
    settings could slow or break the machine."""
    report = printed(attempts(HOST_DEVICES), isolation)
    assert tried(report) == len(HOST_DEVICES), report
    assert worked(report) == [], report


SUPERVISOR = {
    # PTRACE_ATTACH (16) to the process that judges the program, its memory and its descriptors
    "ptrace_attach": "syscall(101, 16, os.getppid(), 0, 0)",
    "proc_mem": "open(f'/proc/{os.getppid()}/mem', 'rb').read(1)",
    "proc_environ": "open(f'/proc/{os.getppid()}/environ', 'rb').read(1)",
    "proc_fds": "os.listdir(f'/proc/{os.getppid()}/fd')",
    "proc_maps": "open(f'/proc/{os.getppid()}/maps').read(1) or (_ for _ in ()).throw(PermissionError('empty'))",
    "signal_stop": "os.kill(os.getppid(), 19) or os.kill(os.getppid(), 18)",
    # the out-of-memory killer's first choice
    "oom_score_adj": "open(f'/proc/{os.getppid()}/oom_score_adj', 'w').write('1000')",
}


@needs(os.uname().machine == "x86_64", "the system call numbers here are x86_64's")
def test_a_stdio_program_cannot_reach_its_supervisor(isolation):
    """Guards the supervisor being non-dumpable (its memory holds every test's input and its pipe
    to seidr): the privilege drop makes it so as root, harness.apply_limits' PR_SET_DUMPABLE
    otherwise. A program that attached to it could write forged results."""
    report = printed(attempts(SUPERVISOR), isolation)
    assert tried(report) == len(SUPERVISOR), report
    # a stop signal to the namespace's init is ignored: the check "works" but stops nothing
    assert [name for name in worked(report) if name != "signal_stop"] == [], report


def function_report(code: str, isolation: str) -> str:
    """What a function-task program (HumanEval/53's `add`) printed while it was called."""
    from tests.test_exploits import load_add_problem

    problem = load_add_problem()
    executor = PythonExecutor(Sandbox(LIMITS, isolation=isolation))
    outcomes = asyncio.run(executor.run(problem.preamble + code, list(problem.valid)[:1], "function",
                                        entry_point=problem.entry_point, preamble=problem.preamble))
    assert outcomes[0].status != "pass"
    return outcomes[0].actual


@needs(os.uname().machine == "x86_64", "the system call numbers here are x86_64's")
def test_a_function_program_cannot_reach_the_process_that_holds_its_tests(isolation):
    """Guards the non-dumpable supervisor on function tasks, where it holds the tests' expected
    values: the program's interpreter is its child, of the same user."""
    body = attempts(SUPERVISOR).replace("\n", "\n    ")
    report = function_report(f"def add(x, y):\n    {body}\n    return None\n", isolation)
    assert tried(report) == len(SUPERVISOR), report
    assert [name for name in worked(report) if name != "signal_stop"] == [], report


DESCRIPTORS = ("import os, stat\n"
               "for fd in sorted(int(name) for name in os.listdir('/proc/self/fd')):\n"
               "    try:\n        mode = os.fstat(fd).st_mode\n    except OSError:\n        continue\n"
               "    kind = 'pipe' if stat.S_ISFIFO(mode) else 'socket' if stat.S_ISSOCK(mode) else 'file'\n"
               "    print(fd, kind, os.readlink(f'/proc/self/fd/{fd}'))\n")


def descriptors(report: str) -> dict[int, tuple[str, str]]:
    return {int(fd): (kind, target) for fd, kind, target in (line.split(" ", 2) for line in report.splitlines())}


def test_a_stdio_program_holds_no_descriptor_but_its_report_pipe(isolation):
    """Guards the worker's /dev/null on 0-2 and close-on-exec everywhere else: a descriptor of
    seidr's pipes in the program's hands lets it write results for tests it never ran."""
    held = descriptors(printed(DESCRIPTORS, isolation))
    assert all(held[fd][1] == "/dev/null" for fd in (0, 1, 2)), held
    assert [kind for kind, _ in held.values()].count("pipe") == 1, held
    assert "socket" not in [kind for kind, _ in held.values()], held


def test_a_function_program_holds_only_its_own_call_channel(isolation):
    """Guards the callee's /dev/null on 0-2: it is started with the supervisor's stderr (seidr's
    pipe) as its own, which a program could fill or write forged lines into."""
    body = DESCRIPTORS.replace("\n", "\n    ")
    held = descriptors(function_report(f"def add(x, y):\n    {body}\n    return None\n", isolation))
    assert all(held[fd][1] == "/dev/null" for fd in (0, 1, 2)), held
    # the requests it reads and the replies it writes, nothing else of seidr's
    assert [kind for kind, _ in held.values()].count("pipe") == 2, held


def test_an_abstract_socket_of_the_host_is_unreachable_at_the_namespace_level():
    """Guards bubblewrap's network namespace: abstract unix sockets have no file to hide, and
    live in the network namespace (at the process level the network is open, as documented)."""
    if not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")
    name = f"\0seidr-attack-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen(1)
        report = printed(attempts({"connect": f"socket.socket(socket.AF_UNIX).connect({name!r})"}), "namespace")
    assert tried(report) == 1 and worked(report) == [], report


def test_a_crash_leaves_no_core_file(isolation):
    """Guards RLIMIT_CORE=0 (hard): a program that makes itself dumpable and crashes would
    otherwise write its whole memory to a file, past the disk quota's intent and per crash."""
    code = ("import ctypes, os, signal\nctypes.CDLL(None).prctl(4, 1, 0, 0, 0)\n"
            "for _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n        os.kill(os.getpid(), signal.SIGSEGV)\n"
            "    os.waitpid(pid, 0)\n"
            "print(sorted(name for name in os.listdir('.') if name.startswith('core')))\n")
    assert printed(code, isolation).strip() == "[]"


needs_root = needs(ROOT, "a run user of its own exists only when seidr runs as root")


@needs_root
def test_a_concurrent_program_cannot_read_another_run_s_working_directory(isolation):
    """Guards the private working directory (mode 0700, the run user's) and the uid per run at
    the process level, and the private /tmp and PID namespace at the namespace level: two
    programs scored at the same time must not see each other's files (one could read what the
    other wrote, or its tests' inputs)."""
    secret = f"seidr-secret-{os.getpid()}"
    writer = f"open('answer.txt', 'w').write({secret!r})\nimport time\ntime.sleep(1.5)\nprint(1)\n"
    reader = ("import glob, time\ntime.sleep(0.5)\nfound = 0\n"
              "for path in glob.glob('/tmp/seidr-run-*/answer.txt') + glob.glob('/proc/*/cwd/answer.txt'):\n"
              "    try:\n        found += " + repr(secret) + " in open(path).read()\n"
              "    except OSError:\n        pass\n"
              "print('found', found, 'dirs', len(glob.glob('/tmp/seidr-run-*')))\n")
    executor = PythonExecutor(Sandbox(LIMITS, isolation=isolation))
    one = [Example("1\n", "1\n")]

    async def both():
        return await asyncio.gather(executor.run(writer, one, "stdio"), executor.run(reader, one, "stdio"))

    wrote, read = asyncio.run(both())
    assert wrote[0].status == "pass"
    assert read[0].actual.startswith("found 0 "), read[0].actual


CPP_DAEMON = r"""
#include <cstdio>
#include <fcntl.h>
#include <iostream>
#include <sys/stat.h>
#include <unistd.h>
int main() {
    long n;
    std::cin >> n;
    if (n == 1 && fork() == 0) {  // a daemon that outlives its test and overwrites the next ones' output
        setsid();
        if (fork() != 0) _exit(0);
        struct stat first;
        stat("stdout.txt", &first);
        for (int i = 0; i < 4000; ++i) {
            struct stat now;  // its own test's file is left alone: only later tests' are written
            if (stat("stdout.txt", &now) != 0 || now.st_ino == first.st_ino) { usleep(1000); continue; }
            int fd = open("stdout.txt", O_WRONLY | O_TRUNC);
            if (fd >= 0) { write(fd, "999\n", 4); close(fd); }
            usleep(1000);
        }
        _exit(0);
    }
    printf("%ld\n", n + 1);
}
"""


@needs_root
def test_a_compiled_daemon_cannot_overwrite_later_tests_output(isolation):
    """Guards the kill of everything the run user left running before each test of a compiled
    program (harness.run_binary_tests): a daemon from test 1 that rewrites stdout.txt would set
    the output of every later test."""
    from seidr.execution.cpp import CppExecutor

    executor = CppExecutor(Sandbox(LIMITS, isolation=isolation))
    outcomes = asyncio.run(executor.run(CPP_DAEMON, TESTS, "stdio"))
    assert [o.status for o in outcomes] == ["pass", "pass", "pass"], [o.actual for o in outcomes]


CGROUPS = ROOT and cgroup_layout(DEFAULT_ROOT)[0] is not None


def test_filling_shared_memory_is_the_program_s_memory_and_is_removed(isolation):
    """Guards the cgroup's memory limit (tmpfs pages in /dev/shm are charged to the program) and
    the sweep of /dev/shm after the run (process level), or /dev/shm being closed (namespace):
    RAM-backed files would otherwise outlive the run, past any memory limit."""
    if isolation == "process" and not CGROUPS:
        unavailable("without cgroups only the per-process limits hold (documented)")
    tag = f"seidr-shm-{os.getpid()}"
    code = (f"import os\nfor i in range(48):\n    with open(f'/dev/shm/{tag}-{{i}}', 'wb') as f:\n"
            "        for _ in range(16):\n            f.write(bytes(1 << 20))\nprint(2)\n")
    limits = ExecutionLimits(test_timeout_s=10, test_cpu_s=5, total_timeout_s=30, memory_mb=256)
    outcomes, _ = run(code, isolation, tests=[Example("1\n", "2\n")], limits=limits)
    assert outcomes[0].status != "pass", outcomes[0]
    assert [name for name in os.listdir("/dev/shm") if name.startswith(tag)] == []


CPP_DESCRIPTORS = r"""
#include <cstdio>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
int main() {
    DIR* folder = opendir("/proc/self/fd");
    int own = dirfd(folder);
    while (dirent* entry = readdir(folder)) {
        if (entry->d_name[0] == '.') continue;
        int fd = atoi(entry->d_name);
        struct stat info;
        if (fd == own || fstat(fd, &info) != 0) continue;
        printf("%d %s\n", fd, S_ISFIFO(info.st_mode) ? "pipe" : S_ISSOCK(info.st_mode) ? "socket" : "file");
    }
}
"""


def test_a_compiled_program_holds_only_its_own_three_files(isolation):
    """Guards the close-on-exec descriptors of the harness (its pipes to seidr, the sealed
    checker, the test's files moved above 10): a compiled program gets its input, output and
    error files and nothing else."""
    from seidr.execution.cpp import CppExecutor

    executor = CppExecutor(Sandbox(LIMITS, isolation=isolation))
    [outcome] = asyncio.run(executor.run(CPP_DESCRIPTORS.replace("<cstdio>", "<cstdio>\n#include <cstdlib>"),
                                         [Example("1\n", "")], "stdio"))
    assert outcome.actual.split("\n")[:4] == ["0 file", "1 file", "2 file", ""], outcome.actual


SUPERVISOR_LIMITS = {
    # lowered to nothing, the supervisor dies of its own limits with every later test unjudged
    "lower_its_cpu_limit": "resource.prlimit(os.getppid(), resource.RLIMIT_CPU, (1, 1))",
    "lower_its_open_files": "resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))",
}
OWN_LIMITS = {  # what honest programs do (a deeper stack for recursion), still allowed
    "own_stack": "resource.setrlimit(resource.RLIMIT_STACK, resource.getrlimit(resource.RLIMIT_STACK))",
    "own_file_size": "resource.prlimit(0, resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))",
}


@pytest.mark.parametrize("mode", ["stdio", "function"])
def test_a_program_cannot_set_its_supervisor_s_limits(isolation, mode):
    """Guards the seccomp filter's refusal of prlimit64 on another process (harness.py): the
    supervisor runs as the program's user, and the kernel lets such a process lower another's
    limits even when it is not dumpable."""
    code = attempts({**SUPERVISOR_LIMITS, **OWN_LIMITS})
    if mode == "stdio":
        report = printed(code, isolation)
    else:
        report = function_report("def add(x, y):\n    " + code.replace("\n", "\n    ") + "\n    return None\n",
                                 isolation)
    assert tried(report) == len(SUPERVISOR_LIMITS) + len(OWN_LIMITS), report
    assert sorted(worked(report)) == sorted(OWN_LIMITS), report
