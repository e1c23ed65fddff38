"""Limits per program, not per process: one cgroup per sandbox run.

A run's processes share one memory limit (swap included, so none), one limit on their number
and a CPU weight below seidr's own, and they all die together at the end of the run: no daemon
outlives it, however it detached. Run cgroups are made under seidr's own cgroup, so whatever
limits seidr itself lives under bind its programs too.

Two layouts: cgroup v2 (the memory and pids controllers enabled for children of seidr's own
cgroup) and v1 (one hierarchy per controller under the root: memory and pids needed, cpu and
freezer used when there). Without either, the sandbox keeps the per-process rlimits only.

A seidr killed with SIGKILL cannot remove its run cgroups, nor kill what runs in them. Each seidr
process holds an flock on a file of its own (`Owner`) for as long as it lives, and names its run
cgroups after it; the next seidr that starts kills and removes the run cgroups whose owner's lock
it can take (`remove_stale`). A cgroup whose owner it cannot see (no lock file: another machine's
or another container's seidr sharing the hierarchy) is left alone."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("seidr.execution")

DEFAULT_ROOT = Path("/sys/fs/cgroup")
V1_NEEDED = ("memory", "pids")
V1_OPTIONAL = ("cpu", "freezer")
# Runs get half the CPU weight of a default cgroup (v2 cpu.weight 100, v1 cpu.shares 1024), so a
# program that spins on every core slows seidr (and the model it may host) less than itself.
V2_CPU_WEIGHT = 50
V1_CPU_SHARES = 512
# How long the end of a run waits for killed processes to leave their cgroup
EMPTY_WAIT_S = 10.0


@dataclass(frozen=True)
class Layout:
    """Where run cgroups go: (controller, parent folder) pairs; for v2 one pair named "unified"."""

    version: int
    parents: tuple[tuple[str, Path], ...]

    def describe(self) -> str:
        folders = sorted({str(parent) for _, parent in self.parents})
        return f"cgroup v{self.version} under {', '.join(folders)}"


def _own_paths() -> dict[str, str]:
    """seidr's own cgroup per v1 controller, and under "" its v2 cgroup (/proc/self/cgroup)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _probe(parent: Path) -> str | None:
    """Why a child cgroup cannot be made in `parent`, or None when it can. A real cgroup file
    system fills a new folder with its control files; a plain folder stays empty."""
    probe = parent / f"seidr-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError as error:
        return f"cannot make a cgroup in {parent}: {error.strerror or error}"
    try:
        if not (probe / "cgroup.procs").exists():
            return f"{parent} is not a cgroup file system"
        return None
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def find_layout(root: Path) -> tuple[Layout | None, str]:
    """The layout for run cgroups under `root` (where cgroups are mounted), or None and why not."""
    try:
        own = _own_paths()
    except (OSError, ValueError) as error:
        return None, f"cannot read /proc/self/cgroup: {error}"
    if (root / "cgroup.controllers").is_file():
        return _find_v2(root, own.get("", "/"))
    return _find_v1(root, own)


def _find_v2(root: Path, own: str) -> tuple[Layout | None, str]:
    parent = root / own.lstrip("/")
    try:
        available = (parent / "cgroup.controllers").read_text().split()
        enabled = (parent / "cgroup.subtree_control").read_text().split()
    except OSError as error:
        return None, f"cannot read the controllers of {parent}: {error.strerror or error}"
    wanted = [c for c in ("memory", "pids", "cpu") if c in available and c not in enabled]
    if not {"memory", "pids"} <= set(available):
        return None, f"cgroup v2 at {parent} lacks the memory or pids controller (has: {' '.join(available)})"
    if wanted:
        try:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
        except OSError as error:
            hint = " (seidr's own cgroup holds processes; run it in a delegated cgroup)" \
                if error.errno == errno.EBUSY else ""
            return None, f"cannot enable {' '.join(wanted)} for children of {parent}: {error.strerror}{hint}"
    if why := _probe(parent):
        return None, why
    return Layout(2, (("unified", parent),)), ""


def _find_v1(root: Path, own: dict[str, str]) -> tuple[Layout | None, str]:
    parents = []
    for controller in (*V1_NEEDED, *V1_OPTIONAL):
        folder = root / controller
        if controller not in own or not (folder / "cgroup.procs").is_file():
            if controller in V1_NEEDED:
                return None, f"no cgroup v2 and no v1 {controller} hierarchy at {folder}"
            continue
        parent = folder / own[controller].lstrip("/")
        if why := _probe(parent):
            if controller in V1_NEEDED:
                return None, why
            continue
        parents.append((controller, parent))
    return Layout(1, tuple(parents)), ""


PREFIX = "seidr-run-"


class Owner:
    """This seidr process, as the owner of run cgroups: a token, and an flock on `<token>.lock`
    in `folder` held for as long as the process lives (the kernel lets go when it dies)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, exist_ok=True)
        self.token = f"{os.getpid()}x{secrets.token_hex(4)}"
        self.path = folder / f"{self.token}.lock"
        self._handle = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._handle, fcntl.LOCK_EX)


def remove_stale(layout: Layout, locks: Path) -> int:
    """Kill and remove the run cgroups of seidr processes that died without cleaning up (their
    owner's lock file in `locks` is there and not held), and those owners' lock files. Returns
    how many cgroups were removed."""
    names: set[str] = set()
    for _, parent in layout.parents:
        try:
            names.update(p.name for p in parent.iterdir() if p.name.startswith(PREFIX) and p.is_dir())
        except OSError:
            continue
    try:
        owners = [path for path in locks.iterdir() if path.suffix == ".lock"]
    except OSError:
        return 0
    removed = 0
    for lock in owners:
        try:
            handle = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue  # alive
        try:
            for name in sorted(n for n in names if n[len(PREFIX):].rpartition("-")[0] == lock.stem):
                RunCgroup.adopt(layout, name).close_now()
                removed += 1
            lock.unlink(missing_ok=True)
        finally:
            os.close(handle)
    if removed:
        log.warning("removed %d run cgroup(s) left by a seidr that was killed, with what still ran in them", removed)
    return removed


class RunCgroup:
    """The cgroup (one folder per v1 controller) of one sandbox run."""

    def __init__(self, layout: Layout, memory_bytes: int, pids: int, owner: Owner | None = None) -> None:
        """Make it and set its limits; raises OSError (and leaves nothing behind) when it cannot.
        Named after its `owner`, so that a later seidr can clean up if this one is killed."""
        self.layout = layout
        name = f"{PREFIX}{owner.token if owner else os.getpid()}-{secrets.token_hex(4)}"
        self.folders = {controller: parent / name for controller, parent in layout.parents}
        try:
            for folder in self.folders.values():
                folder.mkdir()
            if layout.version == 2:
                self._set_v2(self.folders["unified"], memory_bytes, pids)
            else:
                self._set_v1(memory_bytes, pids)
        except OSError:
            self.remove()
            raise

    @classmethod
    def adopt(cls, layout: Layout, name: str) -> RunCgroup:
        """An existing run cgroup, to kill what is in it and remove it."""
        cgroup = cls.__new__(cls)
        cgroup.layout = layout
        cgroup.folders = {controller: parent / name for controller, parent in layout.parents
                          if (parent / name).is_dir()}
        return cgroup

    @staticmethod
    def _set_v2(folder: Path, memory_bytes: int, pids: int) -> None:
        (folder / "memory.max").write_text(str(memory_bytes))
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
        (folder / "pids.max").write_text(str(pids))
        if (folder / "cpu.weight").exists():
            (folder / "cpu.weight").write_text(str(V2_CPU_WEIGHT))

    def _set_v1(self, memory_bytes: int, pids: int) -> None:
        memory = self.folders["memory"]
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        # memory + swap; must come after the memory limit (it may never be below it)
        if (memory / "memory.memsw.limit_in_bytes").exists():
            (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        else:
            (memory / "memory.swappiness").write_text("0")
        (self.folders["pids"] / "pids.max").write_text(str(pids))
        if "cpu" in self.folders:
            (self.folders["cpu"] / "cpu.shares").write_text(str(V1_CPU_SHARES))

    @property
    def procs_files(self) -> list[Path]:
        """Where the run's first process writes its pid to join (before any program code exists:
        its descendants are born inside)."""
        return [folder / "cgroup.procs" for folder in self.folders.values()]

    def _memory_folder(self) -> Path:
        return self.folders["unified" if self.layout.version == 2 else "memory"]

    def oom_kills(self) -> int:
        """How many of the run's processes the kernel killed for going over the memory limit."""
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        try:
            for line in (self._memory_folder() / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def peak_bytes(self) -> int | None:
        """The most memory the run's processes held together (None when the kernel does not say)."""
        name = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self._memory_folder() / name).read_text())
        except (OSError, ValueError):
            return None

    def _pids(self) -> list[int]:
        pids: set[int] = set()
        for folder in self.folders.values():
            try:
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    async def kill(self) -> None:
        """Kill every process in the cgroup, at once: v2's cgroup.kill, or v1's freezer (frozen,
        nothing forks or reacts while it is killed), or kill-and-look-again without one."""
        if self.layout.version == 2:
            kill = self.folders["unified"] / "cgroup.kill"
            if kill.exists():
                await asyncio.to_thread(kill.write_text, "1")
                return
        freezer = self.folders.get("freezer")
        if freezer is not None:
            await self._frozen_kill(freezer / "freezer.state")
            return
        for _ in range(1000):  # each round kills all there are; only a live process makes more
            pids = await asyncio.to_thread(self._pids)
            if not pids:
                return
            for pid in pids:
                _kill(pid)
            await asyncio.sleep(0.001)

    async def _frozen_kill(self, state: Path) -> None:
        await asyncio.to_thread(state.write_text, "FROZEN")
        for _ in range(2000):
            if (await asyncio.to_thread(state.read_text)).strip() == "FROZEN":
                break
            await asyncio.sleep(0.001)
        for pid in await asyncio.to_thread(self._pids):
            _kill(pid)
        await asyncio.to_thread(state.write_text, "THAWED")  # the kills land as the processes thaw

    async def close(self) -> None:
        """Kill what is left, wait until the cgroup is empty and remove it."""
        await self.kill()
        deadline = asyncio.get_running_loop().time() + EMPTY_WAIT_S
        while await asyncio.to_thread(self._pids):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("processes of a finished run are still in %s; left in place",
                            ", ".join(map(str, self.folders.values())))
                return
            await self.kill()
            await asyncio.sleep(0.005)
        await asyncio.to_thread(self.remove)

    def close_now(self) -> None:
        """close() where nothing may be awaited any more (a run cancelled while it cleaned up)."""
        if "freezer" in self.folders:  # a frozen process would never die of its SIGKILL
            try:
                (self.folders["freezer"] / "freezer.state").write_text("THAWED")
            except OSError:
                pass
        for _ in range(200):
            pids = self._pids()
            if not pids:
                break
            for pid in pids:
                _kill(pid)
            time.sleep(0.005)
        self.remove()

    def remove(self) -> None:
        for folder in self.folders.values():
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("cannot remove the run cgroup %s: %s", folder, error.strerror or error)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
