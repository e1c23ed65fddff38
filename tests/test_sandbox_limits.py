"""Limits per program (a cgroup per run), the disk quota of the namespace level, what the process
level cleans up after a run, and the copy that leaves a sandbox. Programs here are attacks: each
test fails if the limit it is about does not hold."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from seidr.execution import sandbox
from seidr.execution.base import ExecutionLimits
from seidr.execution.cgroup import DEFAULT_ROOT, PREFIX, Owner, RunCgroup, remove_stale
from seidr.execution.python import PythonExecutor
from seidr.execution.sandbox import Sandbox, bwrap_works, cgroup_layout
from seidr.problem import Example
from tests.ci import needs, unavailable

LIMITS = ExecutionLimits(test_timeout_s=10, test_cpu_s=5, total_timeout_s=60, max_processes=64)
ONE = [Example("1\n", "2\n")]
ROOT = os.geteuid() == 0
CGROUPS = ROOT and cgroup_layout(DEFAULT_ROOT)[0] is not None
LEVELS = ["process", pytest.param("namespace", marks=needs(
    bwrap_works(),
    reason="bubblewrap is not installed or cannot make namespaces here"))]
# under CI a machine without cgroups must fail these tests, not skip them
needs_cgroups = needs(CGROUPS,
                      "seidr cannot make cgroups here (not root, or no writable cgroup hierarchy)")
needs_root = needs(ROOT, "a run user of its own exists only when seidr runs as root")


@pytest.fixture(params=LEVELS)
def isolation(request) -> str:
    return request.param


def run(code: str, isolation: str, tests=ONE, limits: ExecutionLimits = LIMITS, **options):
    executor = PythonExecutor(Sandbox(limits, isolation=isolation, **options))
    return asyncio.run(executor.run(code, tests, "stdio"))


def statuses(outcomes) -> list[str]:
    return [o.status for o in outcomes]


# Six processes each holding 300 MB at the same time; the answer is printed only when all six
# got there. 512 MB per process allows each of them, 512 MB for the program does not.
SIX_PROCESSES = """
import os
n = int(input())
ready_r, ready_w = os.pipe()
for _ in range(5):
    if os.fork() == 0:
        block = b'x' * (300 * 1024 * 1024)
        os.write(ready_w, b'1')
        os.close(ready_w)  # once every child closed it (or died), the parent reads the end
        import time; time.sleep(60)
        os._exit(0)
os.close(ready_w)
block = b'x' * (300 * 1024 * 1024)
got = 0
while got < 5 and os.read(ready_r, 1):
    got += 1
print(n * 2 if got == 5 else f'only {got} of 5 children held their memory')
"""


@needs_cgroups
def test_six_processes_share_one_memory_limit(isolation):
    limits = dataclasses.replace(LIMITS, memory_mb=512)
    [outcome] = run(SIX_PROCESSES, isolation, limits=limits)
    # which process the kernel kills decides the verdict: the test's own (memory), a child (the
    # answer is wrong), or a child with the test's report pipe kept open (timeout)
    assert outcome.status in ("memory", "wrong", "error", "timeout"), outcome
    # seidr is unharmed, and the next program runs normally
    assert statuses(run("print(int(input()) * 2)\n", isolation, limits=limits)) == ["pass"]


# Forks for as long as it runs when its input is 1; any other input is answered normally.
FORK_BOMB = ("import os\nn = int(input())\nwhile n == 1:\n    try:\n        os.fork()\n    except OSError:\n"
             "        pass\nprint(n * 2)\n")


@needs_cgroups
@needs_root  # without a run user of its own, RLIMIT_NPROC would count seidr's own processes
def test_a_fork_bomb_hits_the_pids_limit_of_its_cgroup(isolation, monkeypatch):
    hits: list[int] = []

    class Recording(sandbox.RunCgroup):
        async def close(self) -> None:
            folder = self.folders.get("unified") or self.folders["pids"]
            events = dict(line.split() for line in (folder / "pids.events").read_text().splitlines())
            hits.append(int(events.get("max", 0)))
            await super().close()

    monkeypatch.setattr(sandbox, "RunCgroup", Recording)
    limits = dataclasses.replace(LIMITS, test_timeout_s=2, total_timeout_s=20, max_processes=32)
    outcomes = run(FORK_BOMB, isolation, tests=[Example("1\n", "2\n"), Example("2\n", "4\n")], limits=limits)
    assert statuses(outcomes) == ["timeout", "pass"]
    assert hits and hits[0] > 0  # forks were refused by pids.max


# 128 files of 16 MB (2 GB) in the working directory; prints the error and the MB written when
# a write fails, else "wrote 2048".
DISK_FILLER = ("import errno\nwritten = 0\nchunk = b'x' * (1024 * 1024)\ntry:\n"
               "    for k in range(128):\n        with open(f'part{k}', 'wb') as f:\n"
               "            for _ in range(16):\n                f.write(chunk)\n                f.flush()\n"
               "                written += len(chunk)\n"
               "except OSError as e:\n    print(errno.errorcode.get(e.errno), written // (1024 * 1024))\n"
               "else:\n    print('wrote', written // (1024 * 1024))\n")


@needs(bwrap_works(), "bubblewrap does not work here")
@needs(sandbox.bwrap_has_size(), "bubblewrap older than 0.7")
def test_writing_two_gigabytes_stops_at_the_disk_quota():
    """Each file stays under max_file_bytes; together they would be 2 GB."""
    limits = dataclasses.replace(LIMITS, disk_mb=64, max_file_bytes=16 * 1024 * 1024)
    [outcome] = run(DISK_FILLER, "namespace", tests=[Example("", "")], limits=limits)
    name, megabytes = outcome.actual.split()
    assert name == "ENOSPC" and int(megabytes) <= 64, outcome


@needs(bwrap_works(), "bubblewrap does not work here")
def test_compiling_and_keeping_a_binary_work_under_the_quota():
    from seidr.execution.cpp import CppExecutor

    if shutil.which("g++") is None:
        unavailable("no g++ here")
    executor = CppExecutor(Sandbox(dataclasses.replace(LIMITS, disk_mb=16), isolation="namespace"))
    code = "#include <iostream>\nint main() { long n; std::cin >> n; std::cout << n * 2 << std::endl; }\n"
    assert statuses(asyncio.run(executor.run(code, ONE * 2, "stdio"))) == ["pass", "pass"]


def daemon_program(places: list[str], link_target: Path, hopping: bool) -> str:
    """A double-forked daemon that writes a file at each of `places`, plus (beside the first) a
    link to `link_target`, a held-open file, a folder and a heartbeat file it rewrites forever;
    it prints its pid once all are there. `hopping`: it forks a successor and exits, again and
    again."""
    return f"""
import os, time
places = {places!r}
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for place in places:
            open(place, 'w').write('left behind')
        os.symlink({str(link_target)!r}, places[0] + '-link')
        held = open(places[0] + '-held', 'w')  # marks every process of the daemon (fds are inherited)
        os.mkdir(places[0] + '-dir')
        open(places[0] + '-dir/inside', 'w').write('x')
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        while True:
            if {hopping!r} and os.fork() != 0:
                os._exit(0)
            open(places[0] + '-beat', 'w').write(str(time.time()))
            time.sleep(0.001)
    os._exit(0)
os.close(w)
print(os.read(r, 100).decode())
"""


@needs_root
@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "rlimits-only"])
@pytest.mark.parametrize("hopping", [False, True], ids=["daemon", "pid-hopping-daemon"])
def test_a_daemon_does_not_outlive_its_run_nor_do_its_files(cgroups, hopping, tmp_path):
    """Process level: a double-forked daemon leaves files in every /tmp-like folder (one a link
    to a file of seidr's, one a folder) and keeps running (a pid-hopping one forks a successor
    and exits, again and again). After the run no process of it is left, and its files are gone
    without anything followed through the link."""
    if cgroups and not CGROUPS:
        unavailable("no cgroups here")
    tag = secrets.token_hex(6)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    # folders the run user can write into
    places = [f"{folder}/seidr-test-{tag}" for folder in sandbox.TMP_LIKE
              if os.path.isdir(folder) and os.stat(folder).st_mode & stat.S_IWOTH]
    code = daemon_program(places, tmp_path, hopping)
    [outcome] = run(code, "process", cgroup_root=DEFAULT_ROOT if cgroups else None)
    assert outcome.status == "wrong" and outcome.actual.strip().isdigit(), outcome  # the daemon was up
    assert _holding(f"seidr-test-{tag}") == []
    left = [p for p in places + [places[0] + suffix for suffix in ("-link", "-dir", "-beat", "-held")]
            if os.path.lexists(p)]
    assert left == []
    assert precious.read_text() == "keep me"


def _holding(name: str) -> list[int]:
    """Live processes with a file of that name open."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue  # dead, waiting to be reaped
            if any(name in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(int(pid))
        except OSError:
            continue
    return found


# A System V shared memory segment, semaphore set and message queue: they outlive the processes
# that made them. The program prints their ids.
SYSV_IPC = """
import ctypes
libc = ctypes.CDLL(None)
n = int(input())
made = [libc.shmget(0, 4096, 0o600 | 0o1000), libc.semget(0, 1, 0o600 | 0o1000), libc.msgget(0, 0o600 | 0o1000)]
print(n * 2, *made)
"""


@needs_root
def test_system_v_ipc_objects_of_a_run_are_removed_after_it(isolation):
    """The namespace level has an IPC namespace per run; the process level removes what the run
    user made."""
    outcomes = run(SYSV_IPC, isolation)
    made = [int(x) for x in outcomes[0].actual.split()[1:]]
    assert len(made) == 3 and min(made) >= 0, outcomes[0].actual  # all three were made
    for kind, ident in zip(("shm", "sem", "msg"), made):
        ids = {line.split()[1] for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]}
        if isolation == "process":  # at namespace the ids are the namespace's own, gone with it
            assert str(ident) not in ids, (kind, ident)
    owners = {line.split()[7 if kind == "shm" else 4] for kind in ("shm", "sem")
              for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]}
    assert not {o for o in owners if sandbox.UID_BASE <= int(o) < sandbox.UID_BASE + sandbox.UID_COUNT}


@pytest.mark.parametrize("where", ["a plain folder", "a missing folder", "a fake cgroup v2 folder"])
def test_without_cgroups_programs_still_run_and_the_log_says_so(isolation, where, tmp_path, caplog):
    root = tmp_path if where != "a missing folder" else tmp_path / "missing"
    if where == "a fake cgroup v2 folder":  # looks like one, but a new folder in it stays empty
        for name in ("cgroup.controllers", "cgroup.subtree_control"):
            (tmp_path / name).write_text("memory pids cpu\n")
    with caplog.at_level(logging.INFO, logger="seidr.execution"):
        outcomes = run("print(int(input()) * 2)\n", isolation, cgroup_root=root)
    assert statuses(outcomes) == ["pass"]
    said = [r for r in caplog.records if "sandbox limits" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and "per process only" in said[0].getMessage()
    assert {p.name for p in tmp_path.iterdir()} <= {"cgroup.controllers", "cgroup.subtree_control"}  # no probe left


@needs_cgroups
def test_with_cgroups_the_log_says_limits_are_per_program(caplog):
    with caplog.at_level(logging.INFO, logger="seidr.execution"):
        Sandbox(LIMITS, isolation="process")
    said = [r.getMessage() for r in caplog.records if "sandbox limits" in r.getMessage()]
    assert len(said) == 1 and "per program" in said[0]


@needs_cgroups
def test_a_killed_seidrs_run_cgroups_are_cleaned_up_by_the_next_one(tmp_path):
    """A seidr killed with SIGKILL leaves its run cgroups, and what ran in them; the next seidr kills
    and removes those whose owner is dead, and leaves a live owner's alone."""
    layout = cgroup_layout(DEFAULT_ROOT)[0]
    dead = subprocess.Popen([sys.executable, "-c", f"from seidr.execution.cgroup import Owner; from pathlib import Path; "
                             f"print(Owner(Path({str(tmp_path)!r})).token, flush=True); import time; time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    dead_token = dead.stdout.readline().strip()
    alive = Owner(tmp_path)
    groups, orphans = {}, []
    for label, token in (("dead", dead_token), ("alive", alive.token)):
        name = f"{PREFIX}{token}-{secrets.token_hex(4)}"
        groups[label] = [parent / name for _, parent in layout.parents]
        for folder in groups[label]:
            folder.mkdir()
        orphan = subprocess.Popen(["sleep", "60"])
        for folder in groups[label]:
            (folder / "cgroup.procs").write_text(str(orphan.pid))
        orphans.append(orphan)
    dead.kill()
    dead.wait()
    try:
        assert remove_stale(layout, tmp_path) == 1
        assert orphans[0].wait(timeout=10) == -9  # what ran in the dead owner's cgroup was killed
        assert not any(folder.exists() for folder in groups["dead"])
        assert all(folder.exists() for folder in groups["alive"]) and orphans[1].poll() is None
        assert not (tmp_path / f"{dead_token}.lock").exists() and (tmp_path / f"{alive.token}.lock").exists()
    finally:
        RunCgroup.adopt(layout, groups["alive"][0].name).close_now()
        for orphan in orphans:
            orphan.kill()


# Opens /dev/null until refused, then tries to raise its open-file limit; prints whether it got
# fewer than 64 and "raised" or "refused".
OPEN_FILES = ("import os, resource\nn = int(input())\nopened = 0\ntry:\n    while True:\n"
              "        os.open('/dev/null', os.O_RDONLY)\n        opened += 1\nexcept OSError:\n    pass\n"
              "try:\n    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))\n    raised = 'raised'\n"
              "except (ValueError, OSError):\n    raised = 'refused'\n"
              "print(opened < 64, raised)\n")


def test_open_files_are_bounded_per_process_and_cannot_be_raised(isolation):
    limits = dataclasses.replace(LIMITS, open_files=64)
    [outcome] = run(OPEN_FILES, isolation, tests=[Example("1\n", "True refused\n")], limits=limits)
    assert outcome.status == "pass", outcome


@pytest.mark.parametrize("make", ["a link to a root-only file", "a FIFO", "nothing at all"])
def test_the_kept_file_is_never_a_link_a_fifo_or_too_large(isolation, make, tmp_path):
    """The copy that leaves a sandbox (a compiled binary) is taken only from a plain file of
    bounded size: the "compiler" here makes something else in its place."""
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    command = {"a link to a root-only file": ["/bin/ln", "-sf", str(secret), "program"],
               "a FIFO": ["/bin/sh", "-c", "rm -f program; mkfifo program"],
               "nothing at all": ["/bin/true"]}[make]
    job = {"mode": "binary", "binary": "program", "tests": ["\n"], "run": False, "compile": command}
    _, kept = asyncio.run(Sandbox(LIMITS, isolation=isolation).run(job, keep="program"))
    assert kept is None


def test_copy_out_takes_only_plain_files_of_bounded_size(tmp_path):
    from seidr.execution.sandbox import copy_out

    target = tmp_path / "copy"
    (tmp_path / "plain").write_bytes(b"x" * 100)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "plain")
    os.mkfifo(tmp_path / "fifo")
    for source in ("link", "fifo", "empty", "/dev/zero", "missing"):
        assert not copy_out(tmp_path / source, target, 1000), source
    assert not copy_out(tmp_path / "plain", target, 99)  # one byte over
    assert not target.exists() and not (tmp_path / "copy.part").exists()
    assert copy_out(tmp_path / "plain", target, 100) and target.read_bytes() == b"x" * 100


def test_a_plain_kept_file_comes_out_whole(isolation):
    job = {"mode": "binary", "binary": "program", "tests": ["\n"], "run": False,
           "compile": ["/bin/sh", "-c", "echo made > program"]}
    raw, kept = asyncio.run(Sandbox(LIMITS, isolation=isolation).run(job, keep="program"))
    assert raw == {} and kept is not None
    try:
        assert kept.read_text() == "made\n" and kept.stat().st_uid == os.geteuid()
    finally:
        kept.unlink()


def answer_reader(targets: list[str]) -> str:
    """A program that prints the first 20 characters of each of `targets`, or the error's name."""
    return ("import sys\nfor path in %r:\n    try:\n        print(open(path).read()[:20])\n"
            "    except OSError as e:\n        print(type(e).__name__)\n" % targets)


def plant_answers(base: Path) -> dict[str, Path]:
    """data, outputs and cache folders under `base`, each holding an answer.txt any user may read
    (so only the sandbox can keep a program from it)."""
    folders = {name: base / name for name in ("data", "outputs", "cache")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "answer.txt").write_text("the answer")
        folder.chmod(0o755)
        (folder / "answer.txt").chmod(0o644)
    base.chmod(0o755)
    return folders


@needs(bwrap_works(), "bubblewrap does not work here")
def test_at_the_namespace_level_no_answer_folder_is_readable(monkeypatch):
    """The data folder (here DATA_PATH), the repository, the outputs and the response cache, all
    outside the folders hidden anyway (/tmp, /root, /home): a program finds none of them."""
    from hydra import compose, initialize_config_dir

    from seidr.app import make_executor
    from seidr.config import CONFIG_DIR, REPO_ROOT, register_resolvers

    base = Path(tempfile.mkdtemp(prefix="seidr-test-answers-", dir="/var/tmp"))
    try:
        folders = plant_answers(base)
        monkeypatch.setenv("DATA_PATH", str(folders["data"]))
        register_resolvers()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                "execution.isolation=namespace", f"paths.output_root={folders['outputs']}",
                f"model.cache_dir={folders['cache']}"])
        assert cfg.paths.data_dir == str(folders["data"])
        targets = [str(folder / "answer.txt") for folder in folders.values()] + [str(REPO_ROOT / "README.md")]
        code = answer_reader(targets)
        [outcome] = asyncio.run(make_executor(cfg).run(code, [Example("", "")], "stdio"))
        assert outcome.actual.split() == ["FileNotFoundError"] * 4, outcome
    finally:
        shutil.rmtree(base)
