"""Starting an untrusted process and making sure nothing of it survives.

Each run gets: a clean environment (nothing of seidr's: no API keys or tokens), a fresh private
working directory removed afterwards, its own session and process group, resource limits set
before the program exists, and, when seidr runs as root, an unprivileged user id of its own
taken from a pool. A user id per run is what makes the final sweep complete: killing every
process of that uid also gets descendants that left the process group with setsid."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

# Run users: uids no account on a normal machine uses (above the login range, below nobody).
UID_BASE = 61000

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


def clean_env(home: Path) -> dict[str, str]:
    """The whole environment a program sees."""
    return {"PATH": CLEAN_PATH, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


class RunUsers:
    """A pool of unprivileged uids, one per concurrent run; None everywhere when not root."""

    def __init__(self, size: int) -> None:
        self.enabled = os.geteuid() == 0
        self._free: asyncio.Queue[int] | None = None
        self._size = size

    @asynccontextmanager
    async def take(self) -> AsyncIterator[int | None]:
        if not self.enabled:
            yield None
            return
        if self._free is None:  # created lazily, inside the running loop
            self._free = asyncio.Queue()
            for offset in range(self._size):
                self._free.put_nowait(UID_BASE + offset)
        uid = await self._free.get()
        try:
            yield uid
        finally:
            self._free.put_nowait(uid)


@asynccontextmanager
async def private_dir(uid: int | None) -> AsyncIterator[Path]:
    """A fresh working directory only the run (and seidr) can use; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="seidr-run-"))
    try:
        if uid is not None:
            os.chown(path, uid, uid)
        os.chmod(path, stat.S_IRWXU)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def kill_everything(process: asyncio.subprocess.Process, uid: int | None) -> None:
    """Kill the run's process group and, with a uid of its own, every process of that uid."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is not None:
        # kill(-1) from a process running as the run's uid reaches every process of that uid
        # (and nothing else): the escaped daemons too. /bin/kill is tiny to start.
        sweeper = await asyncio.create_subprocess_exec(
            "kill", "-KILL", "-1", user=uid, group=uid, extra_groups=[], env={"PATH": CLEAN_PATH},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await sweeper.wait()
    await process.wait()
