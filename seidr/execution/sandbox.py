"""Starting an untrusted process and making sure nothing of it survives.

Two isolation levels; both give: a clean environment (nothing of seidr's: no API keys or
tokens), a fresh private working directory removed afterwards, resource limits set before the
program exists, its own session and process group, and, when seidr runs as root, an
unprivileged user id of its own from a pool (so a final sweep kills every process of that uid,
descendants that left the process group with setsid included).

- `process`: the above. The program can read whatever that uid may read (the job's run folder,
  outputs, response cache and archive are closed to other users, see close_to_programs), and can
  open network connections. As root, the harness makes IPC, mount and PID namespaces of the
  run's own with a /proc of its own (see harness.private_namespaces). After the run, the files
  that uid left in /tmp-like folders are removed, and its processes are killed until none is left.

At both levels the harness is its PID namespace's init (a program cannot stop or kill it), and a
seccomp filter refuses new user namespaces (no file systems mounted past the disk quota) and
changing another process's limits, priority, CPUs or scheduling (the processes that judge a
program run as its user). A C++ function task's checker, which is no init, is out of reach of its
server's signals (a second filter, see cpp_runtime/seidr_checker.cpp).
- `namespace`: the above inside bubblewrap: new PID, network, IPC and UTS namespaces (no
  network at all; every descendant dies with the sandbox's init). The file system is an
  allow-list: the system folders (SYSTEM_FOLDERS) and the interpreter's (and compiler's) own
  folders read-only, a fresh /proc and /dev, a private /tmp, and the working directory, a tmpfs
  of `disk_mb` (a disk quota) and the only thing writable. Nothing else of the host exists in
  there: not the datasets wherever their copies are, not the run folders, not the homes.

`auto` picks `namespace` when bubblewrap works on this machine, else `process`.

At both levels, when the machine lets seidr make cgroups (see cgroup.py), each run has one of
its own: memory (swap off) and the number of processes are limited for the program as a whole,
its CPU weight is below seidr's, and the whole cgroup is killed at the end. Otherwise the
per-process rlimits are all there is (memory_mb per process, max_processes per run user).
Open files: open_files per process, so at most max_processes × open_files for a program."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import functools
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
from typing import Any, AsyncIterator, Collection, Sequence

from seidr.errors import SandboxBroken, SeidrError
from seidr.execution.base import ExecutionLimits
from seidr.execution.cgroup import DEFAULT_ROOT, Layout, Owner, RunCgroup, find_layout, remove_stale
from seidr.execution.harness import MAX_ERROR_CHARS, clip

log = logging.getLogger("seidr.execution")

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_text(encoding="utf-8")
LEVELS = ("auto", "namespace", "process")
# Run users: uids no account on a normal machine uses (above the login range, below nobody).
UID_BASE = 61000
UID_COUNT = 4000
UID_LOCKS = Path(tempfile.gettempdir()) / "seidr-run-users"
# Lock files of the seidr processes that own run cgroups (see cgroup.py)
CGROUP_OWNERS = Path(tempfile.gettempdir()) / "seidr-cgroup-owners"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
# What the namespace level shows of the host, read-only: the system (programs, libraries,
# configuration); the interpreter and compiler are added where they live elsewhere.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Folders the namespace level replaces with empty ones where they lie inside a folder it shows:
# homes hold keys and tokens, /tmp other runs' files. An interpreter that lives under one of them
# is mounted back read-only.
HIDDEN = ("/tmp", "/root", "/home")
# Where a run user can leave files behind at the process level (world-writable folders); the
# sweep after each run removes what that uid owns there.
TMP_LIKE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
# The sandbox's first process: the open-file limit (hard and soft), then it joins the run's
# cgroup (one cgroup.procs per hierarchy, up to "--"), then becomes bubblewrap or the harness.
# Exit status 125: it could not, and no program code ran.
ENTER = ('ulimit -n "$1" || exit 125; shift; '
         'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"')
# Run once with the chosen interpreter: where its standard library and prefixes are.
PROBE = ("import json, os, sys; print(json.dumps({'prefixes': sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, "
         "sys.base_exec_prefix}), 'stdlib': os.__file__, 'version': sys.version.split()[0]}))")


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


def base_interpreter() -> Path:
    """The real interpreter behind seidr's own Python: a virtualenv's python is a link or copy
    whose venv folder may be hidden from programs (under /tmp or a home), while the harness
    needs only the standard library, which lives with the base interpreter."""
    for candidate in (getattr(sys, "_base_executable", None), sys.executable):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    raise SandboxBroken(f"cannot find an executable Python for the sandbox (sys.executable is {sys.executable!r}); "
                        "set execution.python")


def probe_interpreter(python: str) -> dict[str, Any]:
    """What the sandbox must make visible for `python` to run: its prefixes and standard library."""
    try:
        done = subprocess.run([python, "-I", "-S", "-c", PROBE], capture_output=True, text=True, timeout=60,
                              env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"})
        info = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise SandboxBroken(f"execution.python={python} does not run: {detail}; set execution.python to a "
                            "working Python 3 interpreter") from None
    return info


def _hidden_roots(extra: Sequence[str | Path]) -> list[Path]:
    """The folders replaced by empty ones under bubblewrap: HIDDEN plus `extra`, each existing
    folder once, none inside another (an empty folder already hides what is inside it)."""
    found: list[Path] = []
    for path in [*HIDDEN, *extra]:
        folder = Path(path).expanduser().resolve()
        if folder.is_dir() and folder != Path("/"):
            found.append(folder)
    return sorted({f for f in found if not any(f != o and f.is_relative_to(o) for o in found)})


def outside_system(folders: Sequence[Path]) -> list[Path]:
    """The folders (absolute, links resolved) the namespace level must mount besides the system
    folders, each once, none inside another one or inside a system folder."""
    found = {folder.resolve() for folder in folders} | {folder for folder in folders if folder.is_absolute()}
    system = [Path(name).resolve() for name in SYSTEM_FOLDERS if Path(name).is_dir()]
    found = {folder for folder in found if folder.is_dir() and folder != Path("/")
             and not any(folder.is_relative_to(root) for root in system)}
    return sorted(f for f in found if not any(f != o and f.is_relative_to(o) for o in found))


def bwrap_works() -> bool:
    """Whether bubblewrap can make the namespaces seidr asks for, here and now."""
    if shutil.which("bwrap") is None:
        return False
    probe = subprocess.run(["bwrap", *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                            "--", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


@functools.cache
def bwrap_has_size() -> bool:
    """Whether this bubblewrap can size a tmpfs (`--size`, bubblewrap 0.7 and later)."""
    try:
        shown = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--size" in shown.stdout


@functools.cache
def cgroup_layout(root: Path) -> tuple[Layout | None, str]:
    """Where run cgroups go under `root` (found once per root), or None and why not."""
    return find_layout(root) if os.geteuid() == 0 else (None, "seidr does not run as root")


@functools.cache
def cgroup_owner(layout: Layout) -> Owner:
    """This process as the owner of its run cgroups (see cgroup.py), made once per layout, after
    the cgroups of killed seidr processes are cleaned up."""
    remove_stale(layout, CGROUP_OWNERS)
    return Owner(CGROUP_OWNERS)


def _namespace_flags() -> list[str]:
    # No user namespace: as root it would forbid the privilege drop (setgroups is denied there)
    # --as-pid-1: the harness is the PID namespace's init, which no program inside can signal
    return ["--unshare-pid", "--as-pid-1", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--new-session"]


class Sandbox:
    """Runs the harness (see harness.py) on one job under the configured isolation level."""

    def __init__(self, limits: ExecutionLimits, isolation: str = "auto", python: str | None = None,
                 hide: Sequence[str | Path] = (), cgroup_root: str | Path | None = DEFAULT_ROOT) -> None:
        """`hide`: folders programs must not read (the datasets, the run folder and outputs, the
        response cache): a program could look its answers up there, or read earlier programs with
        their failing tests. The namespace level shows only an allow-list of folders, so these
        are absent unless they lie inside one it shows: then they are empty folders. (At the
        process level, see close_to_programs.) `cgroup_root`: where cgroups are mounted (None: no
        cgroups, the per-process rlimits only)."""
        if isolation not in LEVELS:
            raise SeidrError(f"execution.isolation must be one of {', '.join(LEVELS)}, not {isolation!r}")
        self.limits = limits
        self.hidden = _hidden_roots(hide)
        self._caveats: set[str] = set()  # what the harness said this machine goes without, logged once
        self.drop_privileges = os.geteuid() == 0
        if isolation == "auto":
            isolation = "namespace" if bwrap_works() else "process"
        elif isolation == "namespace" and not bwrap_works():
            raise SeidrError("execution.isolation=namespace needs a working bubblewrap (`apt-get install "
                             "bubblewrap`); use execution.isolation=process or auto")
        self.isolation = isolation
        self.python, self._reveal = self._interpreter(python)
        log.info("sandbox isolation: %s%s; programs run with %s", isolation,
                 f" (a free unprivileged uid of {UID_BASE}..{UID_BASE + UID_COUNT - 1} per run)"
                 if self.drop_privileges else "", self.python)
        self.quota = isolation == "namespace" and bwrap_has_size()
        if isolation == "namespace" and not self.quota:
            log.warning("this bubblewrap cannot size a tmpfs (--size needs bubblewrap 0.7): the working "
                        "directory has no disk quota, only max_file_bytes per file")
        self.cgroups, why = cgroup_layout(Path(cgroup_root)) if cgroup_root is not None else (None, "switched off")
        self._owner = cgroup_owner(self.cgroups) if self.cgroups is not None else None
        if self.cgroups is not None:
            log.info("sandbox limits per program (a cgroup v%d each): %d MB of memory without swap, %d processes, "
                     "a lower CPU weight, all killed at the end; open files: %d per process, %d per program",
                     self.cgroups.version, limits.memory_mb, limits.max_processes, limits.open_files,
                     limits.open_files * limits.max_processes)
            log.debug("sandbox: %s", self.cgroups.describe())  # long paths: the debug log only
        else:
            log.warning("sandbox limits per process only (no cgroup: %s): %d MB of address space per process, "
                        "%d processes per run user, %d open files per process", why, limits.memory_mb,
                        limits.max_processes, limits.open_files)

    def _interpreter(self, configured: str | None) -> tuple[str, list[Path]]:
        """The interpreter the harness runs with, and the folders under hidden paths that must
        be mounted back for it. Default: the base interpreter of seidr's own Python; at the
        process level as root, the system's when the unprivileged run user could not read that
        one (a pyenv or uv Python in a home folder closed to others)."""
        python = configured or str(base_interpreter())
        info = probe_interpreter(python)
        if self.drop_privileges and self.isolation == "process" and not self._run_user_can_use(python, info):
            system = shutil.which("python3", path=CLEAN_PATH)
            system_info = probe_interpreter(system) if system and not configured else None
            if system_info is None or not self._run_user_can_use(system, system_info):
                raise SandboxBroken(
                    f"{python} or its standard library ({info['stdlib']}) is not readable by the unprivileged "
                    "run user at execution.isolation=process; set execution.python to an interpreter outside "
                    "closed home folders (e.g. /usr/bin/python3) or use execution.isolation=namespace")
            log.warning("the run user cannot read %s; programs run with the system's %s instead", python, system)
            python, info = system, system_info
        folders = [Path(python).parent, *map(Path, info["prefixes"]), Path(info["stdlib"]).parent]
        return python, outside_system(folders)

    def reveal(self, *paths: str | Path) -> None:
        """Show these folders (read-only) to programs at the namespace level too: a tool's own
        installation (a compiler outside the system folders). Never a run's files."""
        self._reveal = outside_system([*self._reveal, *map(Path, paths)])

    def close_to_programs(self, folders: Sequence[str | Path]) -> list[Path]:
        """At the process level with run users: take every permission of other users off these
        folders (a run's folder, the outputs, the response cache, the archive), so that no run
        user can read what is in them, wherever they are. The namespace level shows programs no
        such folder at all. Returns the folders closed now (not those already closed)."""
        if self.isolation != "process" or not self.drop_privileges:
            return []
        closed = []
        for folder in folders:
            path = Path(folder).expanduser()
            try:
                mode = path.stat().st_mode
                if path.is_dir() and mode & stat.S_IRWXO:
                    os.chmod(path, stat.S_IMODE(mode) & ~stat.S_IRWXO)
                    closed.append(path)
            except FileNotFoundError:
                continue  # not made yet (the archive, before its first commit): nothing to read
            except OSError as error:  # a folder of another user's, a read-only mount
                log.warning("run users may read %s (its permissions could not be changed: %s); use "
                            "execution.isolation=namespace", path, error.strerror or error)
        if closed:
            log.info("closed to other users (programs run as one): %s", ", ".join(map(str, closed)))
        return closed

    @staticmethod
    def _run_user_can_use(python: str, info: dict[str, Any]) -> bool:
        return others_can_read(Path(python)) and others_can_read(Path(info["stdlib"]))

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
                # whatever a crashed earlier holder of this uid left running, or left in /tmp
                await _sweep(uid)
                if self.isolation == "process":
                    await asyncio.to_thread(remove_files_of, uid)
                    await asyncio.to_thread(remove_ipc_of, uid)
                yield uid
                if self.isolation == "process":  # by now no process of the uid is left to make more
                    await asyncio.to_thread(remove_files_of, uid)
                    await asyncio.to_thread(remove_ipc_of, uid)
            finally:
                os.close(handle)  # releases the lock
            return
        raise SeidrError(f"all {UID_COUNT} run users (uids {UID_BASE}..) are busy; lower execution.workers")

    def _command(self, workdir: Path, settings: dict[str, Any], files: Sequence[str] = (),
                 keep: str | None = None, cgroup: RunCgroup | None = None) -> list[str]:
        """The sandbox's command line: ENTER (open files, the run's cgroup), then the harness,
        at the namespace level inside bubblewrap. `files`: names in `workdir` the job reads;
        `keep`: the name of a file the job writes that must outlive the sandbox."""
        joins = [str(path) for path in cgroup.procs_files] if cgroup else []
        enter = ["/bin/sh", "-c", ENTER, "sh", str(self.limits.open_files), *joins, "--"]
        harness = [self.python, "-I", "-B", "-c", HARNESS_SOURCE, json.dumps(settings)]
        if self.isolation != "namespace":
            return [*enter, *harness]
        # an allow-list: bubblewrap's root is an empty tmpfs, and only what is mounted here exists
        mounts: list[str] = []
        shown: list[Path] = []
        for name in SYSTEM_FOLDERS:
            folder = Path(name)
            if folder.is_symlink():  # /bin -> usr/bin on a merged-/usr system
                mounts += ["--symlink", os.readlink(folder), name]
            elif folder.is_dir():
                mounts += ["--ro-bind", name, name]
                shown.append(folder)
        shown += self._reveal
        mounts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # /tmp: root's, not writable
        # an answer folder (or a home) inside a shown one becomes an empty folder
        for root in self.hidden:
            if root != Path("/tmp") and any(root.is_relative_to(folder) for folder in shown):
                mounts += ["--tmpfs", str(root)]
        for folder in self._reveal:  # the interpreter's folders, after any empty folder above them
            for parent in reversed(folder.parents):
                if parent != Path("/"):
                    mounts += ["--perms", "0755", "--dir", str(parent)]
            mounts += ["--ro-bind", str(folder), str(folder)]
        if self.quota:
            # the working directory is a tmpfs of its own size, writable by the run user (the only
            # user in here besides root); the job's files are bound into it read-only, and the
            # file to keep is a host file bound in (the tmpfs dies with the sandbox)
            mounts += ["--perms", "0777", "--size", str(self.limits.disk_mb * 1024 * 1024), "--tmpfs", str(workdir)]
            for name in files:
                mounts += ["--ro-bind", str(workdir / name), str(workdir / name)]
            if keep:
                mounts += ["--bind", str(workdir / keep), str(workdir / keep)]
        else:
            mounts += ["--bind", str(workdir), str(workdir)]
        mounts += ["--chdir", str(workdir)]
        caps = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if self.drop_privileges else []
        return [*enter, "bwrap", *_namespace_flags(), *mounts, *caps, "--", *harness]

    async def run(self, job: dict[str, Any], files: dict[str, Path] | None = None,
                  keep: str | None = None, sealed: Collection[str] = ()) -> tuple[dict[int, dict[str, Any]], Path | None]:
        """Run one job; returns the harness's result per test index and, when `keep` names a file
        the job writes in its working directory, a copy of that file (e.g. a compiled binary).
        Files named in `sealed` are execute-only and stay seidr's (the run user can run them, not
        read or change them; the harness runs them from a descriptor it opened before any program
        code ran, so a name replaced later changes nothing): seidr's own binaries that hold what
        the program must not see.

        Raises SandboxBroken when the harness did not come up (twice: a machine under a fork
        bomb of another run may fail one start), since then no program code ran at all."""
        try:
            return await self._run_once(job, files, keep, sealed)
        except SandboxBroken as error:
            if error.retryable:
                log.warning("the sandbox did not start (%s); trying once more", error)
                return await self._run_once(job, files, keep, sealed)
            raise

    async def _run_once(self, job: dict[str, Any], files: dict[str, Path] | None, keep: str | None,
                        sealed: Collection[str]) -> tuple[dict[int, dict[str, Any]], Path | None]:
        limits = self.limits
        results: dict[int, dict[str, Any]] = {}
        kept: Path | None = None
        async with self._run_user() as uid, _private_dir(uid) as workdir:
            for name, source in (files or {}).items():
                shutil.copy2(source, workdir / name)
                if name in sealed:
                    os.chmod(workdir / name, 0o111)
                elif uid is not None:
                    os.chown(workdir / name, uid, uid)
            if keep and self.quota:  # bound into the sandbox's tmpfs, so it must exist first
                os.close(os.open(workdir / keep, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                if uid is not None:
                    os.chown(workdir / keep, uid, uid)
            cgroup = self._cgroup(job)
            settings = {
                "memory_mb": limits.memory_mb, "max_file_bytes": limits.max_file_bytes,
                # with a cgroup, pids.max is the program's limit (the sandbox's own processes
                # included); RLIMIT_NPROC, per run user, stays behind it as a backstop
                "max_processes": limits.max_processes * (2 if cgroup else 1),
                "total_cpu_s": max(1, int(limits.total_timeout_s)),
                "test_cpu_s": limits.test_cpu_s, "test_timeout_s": limits.test_timeout_s,
                "max_output_bytes": limits.max_output_bytes, "compile_timeout_s": limits.compile_timeout_s,
                "compile_memory_mb": limits.compile_memory_mb, "uid": uid,
                # IPC, mount and PID namespaces of the run's own (bubblewrap makes them at the
                # namespace level; at the process level the harness can, as root)
                "namespaces": uid is not None and self.isolation == "process",
            }
            try:
                await self._run_in(job, workdir, settings, list(files or ()), keep, uid, cgroup, results)
                if cgroup is not None and await asyncio.to_thread(cgroup.oom_kills):
                    _blame_memory(results, limits.memory_mb)
            finally:
                if cgroup is not None:
                    try:
                        await cgroup.close()
                    except asyncio.CancelledError:
                        cgroup.close_now()  # cancelled again while cleaning up: still leave nothing
                        raise
            if keep:
                kept = await asyncio.to_thread(_copy_kept, workdir / keep, limits.max_file_bytes)
        return results, kept

    def _cgroup(self, job: dict[str, Any]) -> RunCgroup | None:
        """This run's cgroup, or None (no cgroups here, or this one could not be made: then the
        rlimits hold alone, as without cgroups)."""
        if self.cgroups is None:
            return None
        # a compile needs the compiler's memory; the binary's runs get memory_mb in their own sandbox
        memory_mb = max(self.limits.memory_mb, self.limits.compile_memory_mb if job.get("compile") else 0)
        try:
            # on the event loop (a few small writes): made in a thread, a cgroup whose run was
            # cancelled meanwhile would be made and never removed
            return RunCgroup(self.cgroups, memory_mb * 1024 * 1024, self.limits.max_processes, self._owner)
        except OSError as error:
            log.warning("cannot make a cgroup for this run (%s); per-process limits only", error.strerror or error)
            return None

    async def _run_in(self, job: dict[str, Any], workdir: Path, settings: dict[str, Any], files: list[str],
                      keep: str | None, uid: int | None, cgroup: RunCgroup | None,
                      results: dict[int, dict[str, Any]]) -> None:
        """Start the sandbox, talk to it, and make sure nothing of it is left running."""
        limits = self.limits
        command = self._command(workdir, settings, files, keep, cgroup)
        try:
            process = await asyncio.create_subprocess_exec(
                *command, cwd=workdir, env=clean_env(workdir),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                # a result line holds at most max_output_bytes of output, each byte at most six
                # characters once JSON-escaped (\u0001), plus bounded error text
                start_new_session=True, limit=limits.max_output_bytes * 6 + 262144,
            )
        except OSError as error:
            raise SandboxBroken(f"cannot start {command[0]}: {error.strerror or error}", retryable=False) from None
        assert process.stderr
        stderr = asyncio.create_task(_tail(process.stderr))
        budget = limits.total_timeout_s + (limits.compile_timeout_s if job.get("compile") else 0)
        timed_out = False
        started: list[Any] = []
        try:
            await asyncio.wait_for(_talk(process, job, results, started, limits.max_output_bytes), budget)
        except asyncio.TimeoutError:
            timed_out = True
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the sandbox broke off: what did not report is judged by the caller
        finally:
            await _kill_everything(process, uid, cgroup)
            errors = await stderr
        if not started:
            what = f"did not answer within {budget:g} s" if timed_out else \
                f"exited with status {process.returncode} before running the program"
            raise SandboxBroken(self._describe(f"the sandbox {what}", errors))
        if started[0] is not True:
            raise SandboxBroken(self._describe(str(started[0]), errors), retryable=False)
        if len(started) > 1 and started[1] not in self._caveats:
            self._caveats.add(started[1])
            log.warning("this machine gives the process level no namespaces of its own (%s): a program can "
                        "see seidr's processes (and their command lines), stop its supervisor, and leave "
                        "POSIX message queues behind; use execution.isolation=namespace", started[1])
        if timed_out:
            for index in range(len(job["tests"])):
                results.setdefault(index, {"status": "timeout",
                                           "error": f"the program ran out of its {budget:g} s in all"})

    def _describe(self, what: str, errors: str) -> str:
        said = " ".join(errors.split())[-400:]
        return (f"{what} (execution.isolation={self.isolation}, python {self.python}"
                + (", programs as an unprivileged run user" if self.drop_privileges else "") + ")"
                + (f": {said}" if said else "")
                + "; fix the machine (see README, Sandbox) or set execution.python / execution.isolation")


async def _talk(process: asyncio.subprocess.Process, job: dict[str, Any], results: dict[int, dict[str, Any]],
                started: list[Any], output_chars: int) -> None:
    """Send the job; read the handshake (into `started`: True, or why the sandbox is broken),
    then one result line per test, each kept as `_kept` makes it."""
    assert process.stdin and process.stdout
    process.stdin.write(json.dumps(job).encode())
    await process.stdin.drain()
    process.stdin.close()
    first = await process.stdout.readline()
    if not first:
        return
    hello = json.loads(first)
    started.append(True if hello.get("ready") is True else str(hello.get("broken") or "the harness said no hello"))
    if hello.get("caveat"):
        started.append(str(hello["caveat"]))
    if started[0] is not True:
        return
    total = len(job["tests"])
    while line := await process.stdout.readline():
        result = json.loads(line)
        index = result.get("i") if isinstance(result, dict) else None
        if isinstance(index, int) and 0 <= index < total:
            results[index] = _kept(result, output_chars)


MAX_KEY_CHARS = 40  # the harness's keys are short words ("status", "exc_type")


def _kept(result: dict[str, Any], output_chars: int) -> dict[str, Any]:
    """A result line as seidr keeps it. The harness already cuts what a program writes, but in a
    stdin/stdout run the program shares a process with the harness's worker and can write result
    lines of its own: here every text is cut again (the output to `output_chars`, any other text
    to MAX_ERROR_CHARS, saying so) and anything but text and numbers is dropped, so what seidr
    holds per test has a bound that no program moves."""
    kept: dict[str, Any] = {}
    for key, value in result.items():
        if len(key) > MAX_KEY_CHARS:
            continue
        if isinstance(value, str):
            kept[key] = _storable(clip(value, output_chars if key == "stdout" else MAX_ERROR_CHARS))
        elif value is None or isinstance(value, (bool, int, float)):
            kept[key] = value
    return kept


def _storable(value: Any) -> Any:
    """Text a program produced, safe to write anywhere: a lone surrogate (which JSON can carry
    but UTF-8 cannot) becomes its escape instead of crashing whoever writes it."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


async def _tail(stream: asyncio.StreamReader, keep: int = 4096) -> str:
    """The last `keep` bytes the harness (or bubblewrap) wrote to stderr, read as they come so a
    chatty process never blocks on a full pipe."""
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-keep:]
    return tail.decode("utf-8", "replace")


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
        # off the event loop: at the process level a program may have filled it
        await asyncio.to_thread(shutil.rmtree, path, True)


async def _kill_everything(process: asyncio.subprocess.Process, uid: int | None,
                           cgroup: RunCgroup | None = None) -> None:
    """Kill the run's process group, its cgroup (everything it started, however detached) and,
    with a uid of its own, every process of that uid."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        await cgroup.kill()
    if uid is not None:
        await _sweep(uid, atomic=cgroup is None)
    await process.wait()


async def _sweep(uid: int, atomic: bool = True, rounds: int = 100) -> None:
    """Kill every process of `uid` until none is left.

    Two ways, each covering the other's gap: kill(-1) from a process running as `uid` reaches
    every process of that uid at once (none can fork past it), but a daemon of that uid could
    kill the sweeper first; seidr's own scan of /proc cannot be stopped by the uid, but a
    process that forks a successor and exits, again and again, can stay ahead of it. Done when
    a kill(-1) ran to its end and a scan after it finds nothing alive. `atomic=False`: the scan
    alone (a run whose cgroup was killed at once already)."""
    for _ in range(rounds):
        swept = await _kill_all_as(uid) if atomic else True
        if not await asyncio.to_thread(_kill_processes_of, uid) and swept:
            return
        await asyncio.sleep(0.001)
    log.warning("processes of run user %d kept appearing after %d rounds of kills", uid, rounds)


async def _kill_all_as(uid: int) -> bool:
    """kill(-1) as `uid` (/bin/kill is tiny to start); whether it ran to its end (exit status
    0, or 1 when there was nothing to kill), not killed first."""
    sweeper = await asyncio.create_subprocess_exec(
        "kill", "-KILL", "-1", user=uid, group=uid, extra_groups=[], env={"PATH": CLEAN_PATH},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await sweeper.wait() in (0, 1)


def _kill_processes_of(uid: int) -> int:
    """SIGKILL every live process with `uid` as any of its user ids; how many there were."""
    found = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or not _runs_as(entry.name, uid):
            continue
        try:
            handle = os.pidfd_open(int(entry.name))
        except OSError:
            continue
        try:
            # the pidfd holds this very process: checked again, it cannot be a reused pid
            if _runs_as(entry.name, uid):
                signal.pidfd_send_signal(handle, signal.SIGKILL)
                found += 1
        except OSError:
            pass
        finally:
            os.close(handle)
    return found


def _runs_as(pid: str, uid: int) -> bool:
    """Whether process `pid` is alive (not a zombie) with `uid` as its real, effective, saved or
    file-system uid. /proc/<pid>/status, not the owner of /proc/<pid>: a process that made itself
    undumpable shows root as that owner."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            status = handle.read(4096)
    except OSError:
        return False
    fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
    state = fields.get(b"State", b"").split()
    if not state or state[0] in (b"Z", b"X"):
        return False
    return str(uid).encode() in fields.get(b"Uid", b"").split()


def remove_files_of(uid: int, folders: Sequence[str] = TMP_LIKE) -> None:
    """Remove what `uid` owns in `folders` (and in world-writable folders inside them): files a
    run left behind at the process level, which a later program of that uid could read. Never
    follows a link: every step is relative to an open folder, and rmtree does not follow links."""
    for folder in folders:
        try:
            handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            _remove_owned(handle, uid, depth=8)
        finally:
            os.close(handle)


# System V IPC objects outlive their processes: a shared memory segment, semaphore set or message
# queue of a run could hand data to a later program of the same uid. (/proc/sysvipc file, remover;
# 0 is IPC_RMID)
_SYSV_IPC = (("shm", lambda libc, ident: libc.shmctl(ident, 0, None)),
             ("sem", lambda libc, ident: libc.semctl(ident, 0, 0)),
             ("msg", lambda libc, ident: libc.msgctl(ident, 0, None)))


def remove_ipc_of(uid: int) -> int:
    """Remove the System V IPC objects `uid` owns or made (process level: the namespace level has
    an IPC namespace of its own per run, gone with it). Returns how many were removed."""
    libc = ctypes.CDLL(None, use_errno=True)
    removed = 0
    for kind, remove in _SYSV_IPC:
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        header = lines[0].split() if lines else []
        for line in lines[1:]:
            fields = dict(zip(header, line.split()))
            try:
                if str(uid) in (fields.get("uid"), fields.get("cuid")) and remove(libc, int(line.split()[1])) == 0:
                    removed += 1
            except (ValueError, IndexError):
                continue
    return removed


def _remove_owned(folder: int, uid: int, depth: int) -> None:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if info.st_uid == uid:
                if stat.S_ISDIR(info.st_mode):
                    shutil.rmtree(name, ignore_errors=True, dir_fd=folder)
                else:
                    os.unlink(name, dir_fd=folder)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and depth > 0:
                # another user's folder the run user could write into (/tmp/.X11-unix and the like)
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
                try:
                    _remove_owned(inner, uid, depth - 1)
                finally:
                    os.close(inner)
        except OSError:
            continue


def copy_out(source: Path, target: Path, max_bytes: int, mode: int = 0o600) -> bool:
    """Copy `source`, in a folder a program could write, to `target` when it is a plain file of
    1 to `max_bytes` bytes: never through a link, never opening a FIFO or device for real (which
    could block forever, or read the kernel's log as root). Written to a partial file first, so
    `target` is whole or absent. Blocking file work: call it off the event loop."""
    try:
        handle = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    partial = target.with_name(target.name + ".part")
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= max_bytes:
            return False
        out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            remaining = max_bytes + 1  # one byte more than allowed: a file that grew since fstat
            while chunk := os.read(handle, min(1 << 20, remaining)):
                remaining -= len(chunk)
                if remaining <= 0:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        finally:
            os.close(out)
        if remaining <= 0:
            partial.unlink(missing_ok=True)
            return False
        os.replace(partial, target)
        return True
    except OSError:
        partial.unlink(missing_ok=True)
        return False
    finally:
        os.close(handle)


def _copy_kept(source: Path, max_bytes: int) -> Path | None:
    """A copy of the file a job was asked to keep, in a fresh file of seidr's (see copy_out)."""
    handle, name = tempfile.mkstemp(prefix="seidr-kept-")
    os.close(handle)
    if copy_out(source, Path(name), max_bytes):
        return Path(name)
    os.unlink(name)
    return None


def _blame_memory(results: dict[int, dict[str, Any]], memory_mb: int) -> None:
    """The kernel killed a process of the run for the cgroup's memory limit: the tests whose
    process died of SIGKILL ran out of memory, and the verdict says so."""
    for result in results.values():
        if result.get("status") in ("crash", "exception") and "SIGKILL" in str(result.get("error", "")):
            result.update(status="memory", error=f"ran out of memory (the program's processes together may use "
                                                  f"{memory_mb} MB)")
