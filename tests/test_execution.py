"""The Python sandbox: verdicts, limits, and hostile programs that must stay contained."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time

import pytest

from seidr.execution.base import ExecutionLimits
from seidr.execution import sandbox
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works
from seidr.execution.scoring import score_stdout
from seidr.problem import Example
from tests.ci import needs, unavailable

LIMITS = ExecutionLimits(test_timeout_s=0.5, test_cpu_s=1, total_timeout_s=15, max_processes=64)
DOUBLE = [Example(f"{n}\n", f"{2 * n}\n") for n in range(3)]
ROOT = os.geteuid() == 0


# under CI a missing dependency that setup installs must fail, not skip (.ci/run sets CI)
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(), "bubblewrap is not installed or cannot make namespaces here"))]


@pytest.fixture(params=LEVELS)
def isolation(request) -> str:
    """Tests that take it run at both isolation levels."""
    return request.param


@pytest.fixture
def run(isolation):
    """Run a Python program on tests in a sandbox of the level under test."""
    def _run(code: str, tests=DOUBLE, mode="stdio", limits=LIMITS, entry_point=None):
        return asyncio.run(PythonExecutor(Sandbox(limits, isolation=isolation)).run(code, tests, mode,
                                                                                   entry_point=entry_point))

    return _run


def statuses(outcomes):
    return [o.status for o in outcomes]


def test_correct_program_passes_every_test(run):
    outcomes = run("n = int(input())\nprint(n * 2)\n")
    assert statuses(outcomes) == ["pass"] * 3 and all(o.score == 1.0 for o in outcomes)


def test_wrong_answer_gets_partial_credit_per_line(run):
    tests = [Example("3\n", "1\n2\n3\n")]
    [outcome] = run("print(1)\nprint(2)\nprint(4)\n", tests)
    assert outcome.status == "wrong" and outcome.score == pytest.approx(2 / 3) and outcome.actual == "1\n2\n4\n"


def test_scoring_rules():
    assert score_stdout("1\n2\n", "1\n2") == (1.0, True)  # trailing newline and spaces do not matter
    assert score_stdout("1\n2\n", "1  \n2\n\n\n") == (1.0, True)
    assert score_stdout("1\n2\n", "1\n2\n3\n") == (pytest.approx(2 / 3), False)  # extra output costs
    assert score_stdout("", "") == (1.0, True)
    assert score_stdout("5\n", "") == (0.0, False)


def test_runtime_error_reports_the_programs_traceback_only(run):
    [outcome] = run("x = 1\nprint(x)\nprint(1 / 0)\n", DOUBLE[:1])
    assert outcome.status == "error" and outcome.score == 0.0
    assert "ZeroDivisionError" in outcome.error and 'File "<program>", line 3' in outcome.error
    assert "harness" not in outcome.error


def test_syntax_error_is_a_verdict_for_every_test(run):
    outcomes = run("def broken(:\n    pass\n")
    assert statuses(outcomes) == ["syntax"] * 3 and "SyntaxError" in outcomes[0].error


def test_nonzero_exit_is_an_error_and_zero_exit_is_normal(run):
    assert statuses(run("import sys\nsys.exit(3)\n", DOUBLE[:1])) == ["error"]
    assert statuses(run("import sys\nprint(int(input()) * 2)\nsys.exit(0)\n", DOUBLE[:1])) == ["pass"]


def test_timeout_is_per_test_and_the_next_test_still_runs(run):
    code = "n = int(input())\nwhile n == 1:\n    pass\nprint(n * 2)\n"
    assert statuses(run(code)) == ["pass", "timeout", "pass"]


def test_a_loop_that_swallows_every_exception_still_times_out(run):
    code = ("n = int(input())\nwhile n < 2:\n    try:\n        while True:\n            pass\n"
            "    except BaseException:\n        pass\nprint(n * 2)\n")
    outcomes = run(code)
    assert statuses(outcomes) == ["timeout", "timeout", "pass"]
    assert all(o.error.startswith("took longer than") for o in outcomes[:2])  # each stopped by its own clock


def test_a_program_past_its_cpu_seconds_is_stopped_by_sigxcpu(run):
    """The wall clock per test is far above the CPU limit, so only SIGXCPU can stop it in time
    for the next tests (the whole run's clock would otherwise take them too)."""
    limits = ExecutionLimits(test_timeout_s=30, test_cpu_s=1, total_timeout_s=20)
    outcomes = run("n = int(input())\nwhile n == 0:\n    pass\nprint(n * 2)\n", limits=limits)
    assert statuses(outcomes) == ["timeout", "pass", "pass"] and outcomes[0].error == "used up its CPU time"


def test_a_file_past_max_file_bytes_is_cut_at_the_limit(run):
    """RLIMIT_FSIZE: the write stops at max_file_bytes (the next test, in the same working
    directory, sees the size). CPython ignores SIGXFSZ, so the program gets EFBIG, which the
    harness reports as the file limit."""
    limits = dataclasses.replace(LIMITS, max_file_bytes=20_000)
    code = ("import os\nn = int(input())\nif n == 0:\n    open('big', 'wb').write(b'x' * 30_000)\n"
            "print(os.path.getsize('big'))\n")
    outcomes = run(code, [Example("0\n", ""), Example("1\n", "20000\n")], limits=limits)
    assert statuses(outcomes) == ["output_limit", "pass"] and "file larger than allowed" in outcomes[0].error


def test_float_tolerance_is_off_by_default_and_bounds_the_difference(isolation):
    third = [Example("\n", "0.3333333333333333 2\n")]
    code = "input()\nprint(f'{1 / 3:.5f}', 2)\n"

    def status(tolerance):
        executor = PythonExecutor(Sandbox(LIMITS, isolation=isolation), float_tolerance=tolerance)
        return asyncio.run(executor.run(code, third, "stdio"))[0].status

    assert status(None) == "wrong"
    assert status(1e-4) == "pass"  # off by 3.3e-6
    assert status(1e-6) == "wrong"


def test_sleeping_past_the_timeout(run):
    assert statuses(run("import time\ntime.sleep(30)\n", DOUBLE[:1])) == ["timeout"]


def test_output_flood_stops_at_the_limit(run):
    limits = ExecutionLimits(test_timeout_s=2, total_timeout_s=15, max_output_bytes=10_000)
    [outcome] = run("while True:\n    print('x' * 1000)\n", DOUBLE[:1], limits=limits)
    assert outcome.status == "output_limit" and len(outcome.actual) <= 10_000


def test_memory_bomb_is_stopped_and_the_run_goes_on(run):
    limits = ExecutionLimits(test_timeout_s=5, total_timeout_s=20, memory_mb=512)
    code = "n = int(input())\nblocks = []\nwhile n == 0:\n    blocks.append(bytearray(50_000_000))\nprint(n * 2)\n"
    outcomes = run(code, DOUBLE[:2], limits=limits)
    assert statuses(outcomes) == ["memory", "pass"] and outcomes[0].error == "MemoryError: ran out of memory"


def test_program_sees_no_secret_from_seidrs_environment(run, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret")
    code = "import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read())\n"
    [outcome] = run(code, DOUBLE[:1])
    assert "sk-test-secret" not in outcome.actual and "wandb-secret" not in outcome.actual
    assert "OPENAI_API_KEY" not in outcome.actual and "PATH" in outcome.actual


def test_detached_grandchildren_do_not_survive_the_run(run):
    code = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(open('/proc/self/stat').read().split()[0])\n"
    )
    before = _pids()
    [outcome] = run(code, DOUBLE[:1])
    assert outcome.status == "wrong"  # it ran; it printed its pid instead of the answer
    # killed before run() returned; poll only so a dying process can leave /proc
    deadline = time.monotonic() + 30
    while (left := [pid for pid in _pids() - before if _sleeping_python(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


def _pids() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def _sleeping_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"class OutputLimit" in f.read()  # the harness, started with its source on the command line
    except OSError:
        return False


def test_the_working_directory_is_private_and_removed(run):
    [outcome] = run("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\n", DOUBLE[:1])
    workdir = outcome.actual.strip()
    assert workdir.startswith("/") and "seidr-run-" in workdir and not os.path.exists(workdir)


@needs(ROOT, "the privilege drop only happens when seidr runs as root")
def test_as_root_the_program_runs_unprivileged(run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    secret.chmod(0o600)
    code = f"import os\nprint(os.getuid())\nprint(open({str(secret)!r}).read())\n"
    [outcome] = run(code, DOUBLE[:1])
    # unreadable (process level) or not even there (namespace level: a private /tmp)
    assert outcome.status == "error" and ("PermissionError" in outcome.error or "FileNotFoundError" in outcome.error)
    assert int(outcome.actual.split()[0]) != 0 and "top secret" not in outcome.actual
    [outcome] = run(f"open({str(tmp_path / 'planted')!r}, 'w')\n", DOUBLE[:1])
    assert outcome.status == "error" and not (tmp_path / "planted").exists()


@needs(ROOT, "RLIMIT_NPROC binds only an unprivileged user")
def test_fork_bomb_is_contained(run):
    limits = ExecutionLimits(test_timeout_s=1, total_timeout_s=10, max_processes=32)
    code = ("import os\nn = int(input())\nwhile n == 0:\n    try:\n        os.fork()\n    except OSError:\n"
            "        pass\nprint(n * 2)\n")
    outcomes = run(code, DOUBLE[:2], limits=limits)
    assert statuses(outcomes) == ["timeout", "pass"]  # the bomb is killed and the run goes on
    # and the machine is fine: a normal program right after runs normally
    assert statuses(run("print(int(input()) * 2)\n", DOUBLE[:1])) == ["pass"]


def test_a_program_cannot_kill_its_supervisor(run, isolation):
    """The supervisor is its PID namespace's init: SIGKILL from inside does not reach it, so the
    program's (empty) answers are judged, and the next run is as usual. (The process level
    makes that namespace only as root; otherwise the kill fails the program's own tests.)"""
    outcomes = run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert statuses(outcomes) == ["error" if isolation == "process" and not ROOT else "wrong"] * 3
    assert statuses(run("print(int(input()) * 2)\n")) == ["pass"] * 3


def test_a_test_that_kills_its_own_process_does_not_stop_the_next(run):
    code = "import os, signal\nn = int(input())\nif n == 0:\n    os.kill(os.getpid(), signal.SIGKILL)\nprint(n * 2)\n"
    outcomes = run(code)
    assert statuses(outcomes) == ["error", "pass", "pass"] and "SIGKILL" in outcomes[0].error


def test_whole_run_timeout_bounds_a_slow_program(run):
    """20 tests of 0.5 s each, within the per-test clock, cannot all fit in 3 s: the first ones
    pass, the rest are timeouts of the whole run."""
    limits = ExecutionLimits(test_timeout_s=2, total_timeout_s=3)
    outcomes = run("import time\ntime.sleep(0.5)\n", [Example("1\n", "")] * 20, limits=limits)
    passed = statuses(outcomes).count("pass")
    assert 1 <= passed < 20 and statuses(outcomes) == ["pass"] * passed + ["timeout"] * (20 - passed)
    assert all("3 s in all" in o.error for o in outcomes[passed:])


def test_function_mode_runs_asserts_against_the_program(run):
    code = "def add(a, b):\n    return a + b if a != 7 else 0\n\nif __name__ == '__main__':\n    input()\n"
    tests = [Example("candidate = add\nassert candidate(1, 2) == 3\n"),
             Example("candidate = add\nassert candidate(7, 1) == 8\n"),
             Example("candidate = add\nassert candidate('a', 1) == 3\n")]
    assert statuses(run(code, tests, mode="function", entry_point="add")) == ["pass", "wrong", "error"]


def test_each_test_starts_with_fresh_program_globals(run):
    code = "count = globals().get('count', 0) + 1\nprint(count)\n"
    assert [o.actual for o in run(code, [Example("", "1\n")] * 3)] == ["1\n"] * 3


def test_many_programs_in_parallel_keep_their_results_apart(isolation):
    async def many():
        executor = PythonExecutor(Sandbox(LIMITS, isolation=isolation))
        codes = [f"print(int(input()) * {k})\n" for k in range(8)]
        return await asyncio.gather(*(executor.run(code, DOUBLE, "stdio") for code in codes))

    results = asyncio.run(many())
    assert [statuses(r) for r in results] == [["pass"] * 3 if k == 2 else
                                              ["pass", "wrong", "wrong"] for k in range(8)]


def test_two_thousand_tests_in_one_run(run):
    tests = [Example(f"{n}\n", f"{n * n}\n") for n in range(2000)]
    outcomes = run("n = int(input())\nprint(n * n)\n", tests)
    assert len(outcomes) == 2000 and all(o.passed for o in outcomes)


def test_writes_to_home_and_project_folders_fail(run, isolation):
    from seidr.config import REPO_ROOT

    targets = [os.path.expanduser("~/seidr-planted.txt"), str(REPO_ROOT / "seidr-planted.txt")]
    code = "import sys\nassert sys.argv == ['program']\nfor path in %r:\n    try:\n        open(path, 'w').write('x')\n" \
           "        print('wrote', path)\n    except OSError as error:\n        print('refused', type(error).__name__)\n" % (targets,)
    if not ROOT and isolation == "process":
        unavailable("at the process level without root the program has the user's own rights")
    [outcome] = run(code, DOUBLE[:1])
    # it ran and tried both: one refusal per target
    assert [line.split()[0] for line in outcome.actual.splitlines()] == ["refused"] * len(targets)
    assert not any(os.path.exists(t) for t in targets)


def test_deleting_files_beside_its_working_directory_fails(run, isolation):
    import tempfile

    neighbour = tempfile.NamedTemporaryFile(prefix="seidr-neighbour-", delete=False)
    neighbour.close()
    try:
        code = ("import os\nfor name in os.listdir('..'):\n    try:\n        os.remove(os.path.join('..', name))\n"
                "    except OSError:\n        pass\nprint('done')\n")
        [outcome] = run(code, DOUBLE[:1])
        assert outcome.actual == "done\n"
        if ROOT or isolation == "namespace":
            assert os.path.exists(neighbour.name)
    finally:
        os.unlink(neighbour.name)


def test_network_is_reachable_only_at_the_process_level(run, isolation):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    def accept_one() -> None:
        try:
            server.accept()
        except OSError:  # closed without a connection: the sandbox had no network
            pass

    threading.Thread(target=accept_one, daemon=True).start()
    code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\n" \
           "except OSError as error:\n    print('blocked', type(error).__name__)\n"
    try:
        [outcome] = run(code, DOUBLE[:1])
    finally:
        server.close()
    if isolation == "namespace":
        assert outcome.actual.startswith("blocked")
    else:
        assert outcome.actual == "connected\n"  # documented: the process level does not block the network


@needs(ROOT, "run users (and their sweeps) exist only when seidr runs as root")
def test_runs_of_separate_sandboxes_never_sweep_each_other(isolation, monkeypatch):
    """Every run ends by killing all processes of its uid; two seidr sandboxes (two jobs on one
    node) must therefore never hand out the same uid at the same time. Both are made to want the
    same uid first, so only its lock can keep them apart."""
    monkeypatch.setattr(sandbox, "UID_BASE", 65100)  # two uids of their own, outside the real pool
    monkeypatch.setattr(sandbox, "UID_COUNT", 2)
    monkeypatch.setattr(sandbox.secrets, "randbelow", lambda n: 0)
    # the waiting program polls for a file in this folder, shown to it (read-only) at both levels
    signal_dir = tempfile.mkdtemp(dir="/var/tmp", prefix="seidr-test-")
    os.chmod(signal_dir, 0o755)
    go = os.path.join(signal_dir, "go")
    roomy = dataclasses.replace(LIMITS, test_timeout_s=60, test_cpu_s=30, total_timeout_s=90)
    waiting = ("import os, time\nn = int(input())\ndeadline = time.monotonic() + 50\n"
               f"while not os.path.exists({go!r}) and time.monotonic() < deadline:\n    time.sleep(0.02)\n"
               "print(n * 2)\n")

    def users_running() -> set[int]:
        """The pool's uids that a harness (hence a program) runs under right now."""
        uids = set()
        for pid in _pids():
            if not _sleeping_python(pid):
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
            except (OSError, StopIteration, ValueError):
                continue
            if uid in (65100, 65101):
                uids.add(uid)
        return uids

    async def both():
        waiting_sandbox = Sandbox(roomy, isolation=isolation)
        waiting_sandbox.reveal(signal_dir)
        waiter = PythonExecutor(waiting_sandbox)
        first = asyncio.ensure_future(waiter.run(waiting, DOUBLE, "stdio"))
        for _ in range(600):  # until the first run's program is up (30 s at most)
            if users_running() or first.done():
                break
            await asyncio.sleep(0.05)
        held = users_running()
        # a whole second run, start and end sweeps included, while the first one's program waits
        second = await PythonExecutor(Sandbox(roomy, isolation=isolation)).run("print(int(input()) * 2)\n",
                                                                               DOUBLE, "stdio")
        open(go, "w").close()
        return held, second, await first

    try:
        held, second, first = asyncio.run(both())
    finally:
        shutil.rmtree(signal_dir, ignore_errors=True)
    assert len(held) == 1  # the first run was running under its uid while the second ran
    assert statuses(second) == ["pass"] * 3 and statuses(first) == ["pass"] * 3


def test_closing_stdout_early_is_a_verdict_and_the_next_test_runs(run):
    code = "import os, sys\nn = int(input())\nif n == 0:\n    sys.stdout.close()\n    os.close(1)\nprint(n * 2)\n"
    outcomes = run(code)
    assert [o.status for o in outcomes] == ["error", "pass", "pass"]
