"""Starting an untrusted process and making sure nothing of it survives.

Two isolation levels; both give: a clean environment (nothing of seidr's: no API keys or
tokens), a fresh private working directory removed afterwards, resource limits set before the
program exists, its own session and process group, and, when seidr runs as root, an
unprivileged user id of its own from a pool (so a final sweep kills every process of that uid,
descendants that left the process group with setsid included).

- `process`: the above, nothing more. The program can read whatever that uid may read, and can
  open network connections.
- `namespace`: the above inside bubblewrap: new PID, network, IPC and UTS namespaces (no
  network at all; every descendant dies with the sandbox's init), the root file system
  read-only, a private /tmp, home folders hidden, nothing writable but the working directory.

`auto` picks `namespace` when bubblewrap works on this machine, else `process`."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from seidr.errors import SeidrError
from seidr.execution.base import ExecutionLimits

log = logging.getLogger("seidr.execution")

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_text(encoding="utf-8")
LEVELS = ("auto", "namespace", "process")
# Run users: uids no account on a normal machine uses (above the login range, below nobody).
UID_BASE = 61000
UID_COUNT = 4000
UID_LOCKS = Path(tempfile.gettempdir()) / "seidr-run-users"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
HIDDEN_HOMES = ("/root", "/home")


def clean_env(home: Path) -> dict[str, str]:
    """The whole environment a program sees."""
    return {"PATH": CLEAN_PATH, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


def others_can_read(path: Path) -> bool:
    """Whether a user other than the owner can reach and read `path` (every folder above it
    must be searchable by others)."""
    path = path.resolve()
    for folder in path.parents:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def bwrap_works() -> bool:
    """Whether bubblewrap can make the namespaces seidr asks for, here and now."""
    if shutil.which("bwrap") is None:
        return False
    probe = subprocess.run(["bwrap", *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                            "--", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _namespace_flags() -> list[str]:
    # No user namespace: as root it would forbid the privilege drop (setgroups is denied there)
    return ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]


class Sandbox:
    """Runs the harness (see harness.py) on one job under the configured isolation level."""

    def __init__(self, limits: ExecutionLimits, isolation: str = "auto", python: str | None = None) -> None:
        if isolation not in LEVELS:
            raise SeidrError(f"execution.isolation must be one of {', '.join(LEVELS)}, not {isolation!r}")
        self.limits = limits
        self.drop_privileges = os.geteuid() == 0
        if isolation == "auto":
            isolation = "namespace" if bwrap_works() else "process"
        elif isolation == "namespace" and not bwrap_works():
            raise SeidrError("execution.isolation=namespace needs a working bubblewrap (`apt-get install "
                             "bubblewrap`); use execution.isolation=process or auto")
        self.isolation = isolation
        self.python = python or self._interpreter()
        log.info("sandbox isolation: %s%s; programs run with %s", isolation,
                 f" (a free unprivileged uid of {UID_BASE}..{UID_BASE + UID_COUNT - 1} per run)"
                 if self.drop_privileges else "", self.python)

    def _interpreter(self) -> str:
        """seidr's own Python, unless the unprivileged run user could not read it (a home folder
        closed to others): then the system's, at the process level. Under bubblewrap, seidr's
        Python's prefix is mounted where the run user can read it."""
        own = Path(sys.executable)
        if not self.drop_privileges or self.isolation == "namespace" or others_can_read(own):
            return str(own)
        system = shutil.which("python3", path=CLEAN_PATH)
        if system and others_can_read(Path(system)):
            return system
        raise SeidrError(f"{own} is not readable by an unprivileged user and there is no system python3; "
                         "install python3 or use execution.isolation=namespace")

    @asynccontextmanager
    async def _run_user(self) -> AsyncIterator[int | None]:
        """An unprivileged uid no other run on this machine is using (None when not root).

        The uid is held by an flock on a file named after it, so two seidr processes (parallel
        jobs on one node, a run beside the tests) never share one: a run's final sweep kills
        every process of its uid, and must never reach another run's programs."""
        if not self.drop_privileges:
            yield None
            return
        UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
        start = secrets.randbelow(UID_COUNT)
        for step in range(UID_COUNT):
            uid = UID_BASE + (start + step) % UID_COUNT
            handle = os.open(UID_LOCKS / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            try:
                await _sweep(uid)  # whatever a crashed earlier holder of this uid left running
                yield uid
            finally:
                os.close(handle)  # releases the lock
            return
        raise SeidrError(f"all {UID_COUNT} run users (uids {UID_BASE}..) are busy; lower execution.workers")

    def _command(self, workdir: Path, settings: dict[str, Any]) -> list[str]:
        harness = [self.python, "-I", "-B", "-c", HARNESS_SOURCE, json.dumps(settings)]
        if self.isolation != "namespace":
            return harness
        mounts = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for home in HIDDEN_HOMES:
            if os.path.isdir(home):
                mounts += ["--tmpfs", home]
        prefix = Path(sys.base_prefix).resolve()
        home = next((home for home in HIDDEN_HOMES if prefix.is_relative_to(home)), None)
        if home is not None:  # seidr's Python, back from under a hidden home, on a path the run user can walk
            between = [p for p in reversed(prefix.parents) if p.is_relative_to(home) and p != Path(home)]
            for folder in between:
                mounts += ["--perms", "0755", "--dir", str(folder)]
            mounts += ["--ro-bind", str(prefix), str(prefix)]
        mounts += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        caps = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if self.drop_privileges else []
        return ["bwrap", *_namespace_flags(), *mounts, *caps, "--", *harness]

    async def run(self, job: dict[str, Any], files: dict[str, Path] | None = None,
                  keep: str | None = None) -> tuple[dict[int, dict[str, Any]], Path | None]:
        """Run one job; returns the harness's result per test index and, when `keep` names a file
        the job writes in its working directory, a copy of that file (e.g. a compiled binary)."""
        limits = self.limits
        results: dict[int, dict[str, Any]] = {}
        kept: Path | None = None
        async with self._run_user() as uid, _private_dir(uid) as workdir:
            for name, source in (files or {}).items():
                shutil.copy2(source, workdir / name)
                if uid is not None:
                    os.chown(workdir / name, uid, uid)
            settings = {
                "memory_mb": limits.memory_mb, "max_file_bytes": limits.max_file_bytes,
                "max_processes": limits.max_processes, "total_cpu_s": max(1, int(limits.total_timeout_s)),
                "test_cpu_s": limits.test_cpu_s, "test_timeout_s": limits.test_timeout_s,
                "max_output_bytes": limits.max_output_bytes, "compile_timeout_s": limits.compile_timeout_s,
                "compile_memory_mb": limits.compile_memory_mb, "uid": uid,
            }
            process = await asyncio.create_subprocess_exec(
                *self._command(workdir, settings), cwd=workdir, env=clean_env(workdir),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True, limit=limits.max_output_bytes * 4 + 65536,
            )
            budget = limits.total_timeout_s + (limits.compile_timeout_s if job.get("compile") else 0)
            timed_out = False
            try:
                await asyncio.wait_for(_talk(process, job, results), budget)
            except asyncio.TimeoutError:
                timed_out = True
            except (ConnectionError, asyncio.LimitOverrunError, ValueError):
                pass  # the sandbox broke off: what did not report is judged by the caller
            finally:
                await _kill_everything(process, uid)
            if timed_out:
                for index in range(len(job["tests"])):
                    results.setdefault(index, {"status": "timeout",
                                               "error": f"the program ran out of its {budget:g} s in all"})
            if keep and (workdir / keep).is_file():
                handle, name = tempfile.mkstemp(prefix="seidr-kept-")
                os.close(handle)
                shutil.copy2(workdir / keep, name)
                kept = Path(name)
        return results, kept


async def _talk(process: asyncio.subprocess.Process, job: dict[str, Any], results: dict[int, dict[str, Any]]) -> None:
    assert process.stdin and process.stdout
    process.stdin.write(json.dumps(job).encode())
    await process.stdin.drain()
    process.stdin.close()
    total = len(job["tests"])
    while line := await process.stdout.readline():
        result = json.loads(line)
        index = result.get("i")
        if isinstance(index, int) and 0 <= index < total:
            results[index] = result


@asynccontextmanager
async def _private_dir(uid: int | None) -> AsyncIterator[Path]:
    """A fresh working directory only the run (and seidr) can use; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="seidr-run-"))
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        os.chmod(path, stat.S_IRWXU)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _kill_everything(process: asyncio.subprocess.Process, uid: int | None) -> None:
    """Kill the run's process group and, with a uid of its own, every process of that uid."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        await _sweep(uid)
    await process.wait()


async def _sweep(uid: int) -> None:
    """kill(-1) from a process running as `uid` reaches every process of that uid and nothing
    else: the escaped daemons too. /bin/kill is tiny to start."""
    sweeper = await asyncio.create_subprocess_exec(
        "kill", "-KILL", "-1", user=uid, group=uid, extra_groups=[], env={"PATH": CLEAN_PATH},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await sweeper.wait()
