"""What a program can reach of the machine it runs on, at both isolation levels: the host's files
(an allow-list at the namespace level), the job's own files (the run folder wherever it is), user
namespaces, the processes that judge it, seidr's command line, and message queues of earlier runs.
Each program here is an attack; each test fails when the attack works."""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.problem import Example
from tests.ci import needs

LIMITS = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=30)
ROOT = os.geteuid() == 0
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(), "bubblewrap is not installed or cannot make namespaces here"))]
# a run user of its own (and so everything the process level does with it) needs root
needs_root = needs(ROOT, "a run user of its own exists only when seidr runs as root")


@pytest.fixture(params=LEVELS)
def isolation(request) -> str:
    return request.param


def run(code: str, isolation: str, tests=(Example("1\n", "2\n"),), limits: ExecutionLimits = LIMITS,
        mode: str = "stdio", **options):
    executor = PythonExecutor(Sandbox(limits, isolation=isolation))
    return asyncio.run(executor.run(code, list(tests), mode, **options))


def reader(targets: list[str]) -> str:
    """A program that prints, for each of `targets`, the start of the file or its error's name."""
    return ("import sys\nfor path in %r:\n    try:\n        print(open(path).read()[:20])\n"
            "    except OSError as e:\n        print(type(e).__name__)\n" % targets)


@pytest.fixture
def planted():
    """An answer file any user may read in several places a dataset copy could be: /srv, /opt,
    /var/tmp, /mnt, a home folder, beside the repository, each removed afterwards."""
    tag = secrets.token_hex(4)
    places = [Path(base) / f"seidr-test-{tag}" for base in ("/srv", "/opt", "/var/tmp", "/mnt", "/home",
                                                            Path.cwd().parent)]
    made = []
    for place in places:
        try:
            place.mkdir(mode=0o755)
        except OSError:
            continue
        place.chmod(0o755)
        (place / "answer.txt").write_text("the answer")
        (place / "answer.txt").chmod(0o644)
        made.append(place)
    assert len(made) >= 4, "cannot plant files here"
    yield [str(place / "answer.txt") for place in made]
    for place in made:
        shutil.rmtree(place, ignore_errors=True)


def test_the_namespace_level_shows_only_the_system_and_the_interpreter(planted):
    """An allow-list: whatever copy of the data lies anywhere else on the machine, a program does
    not see it; it still runs, with the interpreter and the system's libraries it needs."""
    if not bwrap_works():
        pytest.fail("bubblewrap does not work here; scripts/setup.sh installs it")
    code = reader(planted) + "import os, json, subprocess\nprint(sorted(os.listdir('/')))\n" \
                             "print(subprocess.run(['/bin/echo', 'ran'], capture_output=True, text=True).stdout)\n"
    [outcome] = run(code, "namespace")
    lines = outcome.actual.splitlines()
    assert lines[:len(planted)] == ["FileNotFoundError"] * len(planted), outcome
    assert set(eval(lines[len(planted)])) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc",
                                              "dev", "tmp", "root", "home"}, lines
    assert lines[len(planted) + 1] == "ran", outcome


def test_the_process_level_runs_with_its_readable_host(planted):
    """The process level shows the host as the run user may read it (the README says so): the
    allow-list above is the namespace level's."""
    [outcome] = run(reader(planted[:1]), "process")
    assert outcome.actual.split("\n")[0] == "the answer", outcome


@needs_root
def test_a_job_s_run_folder_is_unreadable_to_its_programs_wherever_it_is(isolation):
    """A run folder outside paths.output_root (hydra.run.dir=..., dev.develop(output_dir=...))
    with programs.jsonl readable by anyone: every later program tries to read it, and none can."""
    from seidr import dev
    from tests.scripted import ScriptedBackend

    base = Path(tempfile.mkdtemp(prefix="seidr-test-run-", dir="/var/tmp"))
    base.chmod(0o755)
    folder = base / "run"
    cache = base / "cache"
    cache.mkdir(mode=0o755)
    (cache / "answer.txt").write_text("cached")
    os.umask(0o022)
    peek = ("import sys\nfor path in %r:\n    try:\n        print('LEAK', len(open(path).read()))\n"
            "    except OSError as e:\n        print(type(e).__name__)\n"
            % [str(folder / "programs.jsonl"), str(cache / "answer.txt")])
    reply = f"```python\n{peek}```"
    backend = ScriptedBackend(lambda step, messages, index: reply if step != "explain" else "Wrong.")
    try:
        result = dev.develop("Read an integer and print twice its value.", examples=[("2", "4"), ("3", "6")],
                             tests=[("5", "10")], model=backend, max_programs=3, output_dir=folder,
                             overrides=["model.cache=false", "tracking=none", f"execution.isolation={isolation}",
                                        f"model.cache_dir={cache}"])
        assert len(result.programs) >= 2 and (folder / "programs.jsonl").stat().st_size > 0
        printed = [outcome.actual for program in result.programs for outcome in program.outcomes]
        assert printed and not any("LEAK" in text for text in printed), printed
    finally:
        shutil.rmtree(base, ignore_errors=True)


# unshare(CLONE_NEWUSER), a raw clone with CLONE_NEWUSER, and the unshare tool mounting a tmpfs in
# a user namespace of its own: each prints whether it worked
USER_NAMESPACES = """
import ctypes, os, platform, subprocess
n = int(input())
libc = ctypes.CDLL(None, use_errno=True)
print('unshare', libc.unshare(0x10000000) == 0)
if platform.machine() == 'x86_64':
    child = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWUSER | SIGCHLD)
    if child == 0:
        os._exit(0)
    if child > 0:
        os.waitpid(child, 0)
    print('clone', child > 0)
else:
    print('clone', False)
mounted = subprocess.run(['unshare', '-Urm', 'sh', '-c', 'mount -t tmpfs none /mnt && echo yes'],
                         capture_output=True, text=True).stdout.strip()
print('tmpfs', mounted == 'yes')
print(n * 2)
"""


def test_a_program_cannot_make_a_user_namespace(isolation):
    """In a user namespace of its own a program could mount a tmpfs and write far past disk_mb."""
    [outcome] = run(USER_NAMESPACES, isolation)
    assert outcome.actual.split("\n")[:3] == ["unshare False", "clone False", "tmpfs False"], outcome
    assert outcome.actual.split("\n")[3] == "2", outcome  # and the program ran on to its answer


# Stops, interrupts and kills the process that judges it (its parent)
STOP_THE_JUDGE = """
import os, signal
for sig in (signal.SIGSTOP, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
    try:
        os.kill(os.getppid(), sig)
    except OSError:
        pass
"""
# A child stops every process the program may signal, then the program waits for it
STOP_EVERYTHING = """
import os, signal
if os.fork() == 0:
    try:
        os.kill(-1, signal.SIGSTOP)
    finally:
        os._exit(0)
os.wait()
print(int(input()) * 2)
"""


@needs_root
def test_a_program_cannot_stop_the_process_that_judges_it(isolation):
    """A stopped supervisor used to cost the run's whole budget (total_timeout_s) instead of the
    per-test limit; now the signals do nothing to it and the program's answers are judged, at
    stdin/stdout and at function tasks (where the program runs in a process of its own)."""
    limits = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=40)
    tests = [Example(f"{n}\n", f"{2 * n}\n") for n in range(3)]
    started = time.monotonic()
    outcomes = run(STOP_THE_JUDGE + "print(int(input()) * 2)\n", isolation, tests=tests, limits=limits)
    function = STOP_THE_JUDGE + "def double(n):\n    return n * 2\n"
    outcomes += run(function, isolation, tests=[Example("assert double(2) == 4\n"), Example("assert double(5) == 10\n")],
                    limits=limits, mode="function", entry_point="double")
    assert [o.status for o in outcomes] == ["pass"] * 5, outcomes
    assert time.monotonic() - started < 20  # two runs, not one total_timeout_s each


@needs_root
def test_stopping_every_process_it_may_costs_what_a_loop_costs(isolation):
    """kill(-1, SIGSTOP) reaches only the program's own processes: each test is one timeout of
    test_timeout_s, as for an endless loop, never the run's whole budget."""
    limits = ExecutionLimits(test_timeout_s=1, test_cpu_s=1, total_timeout_s=40)
    tests = [Example(f"{n}\n", f"{2 * n}\n") for n in range(3)]
    started = time.monotonic()
    outcomes = run(STOP_EVERYTHING, isolation, tests=tests, limits=limits)
    assert [o.status for o in outcomes] == ["timeout"] * 3, outcomes
    assert all("in all" not in o.error for o in outcomes), outcomes
    assert time.monotonic() - started < 20


@needs_root
def test_seidr_s_command_line_is_not_readable_by_a_program(isolation):
    """A secret on the command line of a process of seidr's (model.api_key=... on main.py's) is in
    its /proc/<pid>/cmdline; no program finds it there, at either level."""
    needle = f"SEIDRTESTSECRET{secrets.token_hex(6)}"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"model.api_key={needle}"])
    try:
        code = ("import os\nn = int(input())\nfound = 0\nfor pid in os.listdir('/proc'):\n    try:\n"
                f"        found += {needle!r}.encode() in open(f'/proc/{{pid}}/cmdline', 'rb').read()\n"
                "    except OSError:\n        pass\nprint('found', found)\n")
        [outcome] = run(code, isolation)
        assert outcome.actual.strip() == "found 0", outcome
    finally:
        holder.kill()
        holder.wait()


MESSAGE_QUEUE = """
import ctypes, os
n = int(input())
libc = ctypes.CDLL(None, use_errno=True)
libc.mq_open.restype = ctypes.c_int
queue = libc.mq_open({name!r}.encode(), {flags}, 0o666, None)
print('opened', queue >= 0)
if queue >= 0 and {send}:
    print('sent', libc.mq_send(queue, b'the answer', 10, 0) == 0)
"""


@needs_root
def test_a_message_queue_does_not_outlive_its_run(isolation):
    """A POSIX message queue a run made (readable by all) is gone for the next run, and for the host."""
    name = f"/seidr-test-{secrets.token_hex(4)}"
    [made] = run(MESSAGE_QUEUE.format(name=name, flags=os.O_CREAT | os.O_RDWR, send=True), isolation)
    assert made.actual.split("\n")[:2] == ["opened True", "sent True"], made
    [later] = run(MESSAGE_QUEUE.format(name=name, flags=os.O_RDONLY, send=False), isolation)
    assert later.actual.strip() == "opened False", later
    libc = ctypes.CDLL(None, use_errno=True)
    queue = libc.mq_open(name.encode(), os.O_RDONLY)
    if queue >= 0:
        libc.mq_unlink(name.encode())
    assert queue < 0, "the queue is still on the host"


WITHOUT_SYS_ADMIN = """
import asyncio, logging
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from seidr.execution.base import ExecutionLimits
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox
from seidr.problem import Example
executor = PythonExecutor(Sandbox(ExecutionLimits(), isolation="process"))
for _ in range(2):
    [outcome] = asyncio.run(executor.run("print(int(input()) * 2)", [Example("1\\n", "2\\n")], "stdio"))
    print(outcome.status)
"""


@needs_root
def test_a_machine_without_namespaces_runs_the_process_level_and_says_what_does_not_hold():
    """As root in a container without CAP_SYS_ADMIN the harness cannot make its namespaces: the
    programs still run, and the log says once what that leaves open."""
    from seidr.config import REPO_ROOT

    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to take CAP_SYS_ADMIN away"
    done = subprocess.run([setpriv, "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", sys.executable, "-c",
                           WITHOUT_SYS_ADMIN], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.stdout.split() == ["pass", "pass"], done.stderr
    assert done.stderr.count("no namespaces of its own") == 1, done.stderr


@needs_root
def test_a_compiled_program_that_stops_everything_changes_nothing(isolation):
    """A C++ function task: the program (seidr's server) stops its checker and every process it
    may signal. The server's seccomp filter refuses signals to the checker (which runs as the run
    user), and the supervisor is its namespace's init: the program's verdicts are those of the same
    program without the attack."""
    from seidr.execution.cpp import CppExecutor
    from tests.test_cpp_exploits import INCLUDES, load_add_problem

    problem = load_add_problem()
    limits = ExecutionLimits(test_timeout_s=2, test_cpu_s=2, total_timeout_s=60, compile_timeout_s=60)
    executor = CppExecutor(Sandbox(limits, isolation=isolation))
    code = problem.preamble + INCLUDES + "int add(int x, int y) {\n    kill(getppid(), SIGSTOP);\n" \
                                         "    kill(-1, SIGSTOP);\n    return x + y;\n}\n"
    started = time.monotonic()
    outcomes = asyncio.run(executor.run(code, problem.valid, "function", entry_point=problem.entry_point,
                                        signature=problem.signature))
    assert [o.status for o in outcomes] == ["pass"] * len(problem.valid), outcomes
    assert time.monotonic() - started < limits.total_timeout_s / 2
