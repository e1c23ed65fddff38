"""One job per run folder: two jobs resuming the same folder would each append every program.
And a run folder that cannot be written is refused in one line before Hydra writes into it."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seidr.atomic import NO_SPACE, cannot_write
from seidr.errors import SeidrError

LOCK_NAME = ".seidr.lock"


class RunLock:
    """An exclusive `flock` on `<run folder>/.seidr.lock`, held while the job runs. The kernel
    drops it when the process ends, however it ends, so a killed job never leaves a stale lock;
    the file stays behind and holds the pid of the job that last held it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._handle: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise one clear line naming the job that holds it."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise cannot_write(self.path, error, self.folder) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(handle)
            os.close(handle)
            raise SeidrError(f"{self.folder} is in use by another seidr job ({holder}); wait for it to end, "
                             "or run in another folder (hydra.run.dir=...)") from None
        except OSError:
            os.close(handle)
            raise
        self._handle = handle
        try:
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # e.g. a full disk: the lock holds all the same, others just see no pid

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the last descriptor drops the flock
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(handle: int) -> str:
    # the holder writes its pid right after locking: a moment in between reads as unknown
    text = os.pread(handle, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "pid unknown"


class WritableRunFolder(Callback):
    """A Hydra callback: before Hydra makes the run folder and writes its .hydra/ files there, a
    folder nobody can write to, or on a full disk, ends the job with one line (Hydra would print a
    traceback)."""

    # what the probe writes: an empty file needs no free block, so a full disk would pass it
    PROBE = b"seidr checks that this folder takes data\n" * 64

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).expanduser().absolute()
        existing = next(p for p in (folder, *folder.parents) if p.is_dir())  # made later, not here
        try:
            with tempfile.TemporaryFile(dir=existing) as probe:
                probe.write(self.PROBE)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as error:
            if error.errno in NO_SPACE:  # the same line as a disk that fills during the run
                print(f"seidr: error: {cannot_write(folder, error, run_dir=folder)}", file=sys.stderr)
            else:
                print(f"seidr: error: cannot write {folder}: {error.strerror or error}; make {existing} writable "
                      "or run in another folder (hydra.run.dir=...)", file=sys.stderr)
            sys.exit(2)
