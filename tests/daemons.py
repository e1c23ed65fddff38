"""Daemons a test run starts, told apart from those already running, so the run stops
exactly its own: scripts/slurm-up.sh starts munged, slurmctld and slurmd when they are not running,
and a cluster that was up before the tests must still be up after them."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# the pid files slurm-up.sh's daemons write, in the order they are stopped (the reverse of starting)
SLURM_PID_FILES = (Path("/run/slurmd.pid"), Path("/run/slurmctld.pid"), Path("/run/munge/munged.pid"))


def live_pid(pid_file: Path) -> int | None:
    """The process id in `pid_file` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


@dataclass(frozen=True)
class Daemons:
    """What ran under each pid file before the test run started its own."""

    pid_files: tuple[Path, ...]
    before: tuple[int | None, ...]

    @classmethod
    def snapshot(cls, pid_files: Sequence[Path] = SLURM_PID_FILES) -> "Daemons":
        return cls(tuple(pid_files), tuple(live_pid(path) for path in pid_files))

    def stop_started(self, grace_s: float = 10.0) -> list[int]:
        """Stop every daemon running now whose pid file had no live process at the snapshot (TERM,
        then KILL after `grace_s`); returns their process ids. One that was running then is left
        alone, even when the script restarted it (its config changed): it was up before, so it stays up."""
        stopped = []
        for path, earlier in zip(self.pid_files, self.before):
            pid = live_pid(path)
            if pid is None or earlier is not None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(pid)
        return stopped


def _alive(pid: int) -> bool:
    try:
        # a child of this process (as in the tests of this module) is reaped here, not left a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, parent not reaping) counts as stopped
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
