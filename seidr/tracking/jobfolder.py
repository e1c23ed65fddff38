"""The run folder as a command line leaves it. A job claims its folder with its first recorded
program: only then are Hydra's `.hydra/*.yaml` files written there and its log lines added to
`main.log`. A job refused before that (the folder holds another job, or another run of it)
leaves the folder exactly as it was, and one that failed before it leaves no empty folder."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from seidr.atomic import write_text_atomic
from seidr.redact import Redactor
from seidr.tracking.lock import LOCK_NAME

log = logging.getLogger("seidr")
HYDRA_FILES = ".hydra"
# what a job makes in its folder before it claims it: nothing of a result
UNCLAIMED = {LOCK_NAME, "main.log"}


class HeldLog:
    """The job's log lines to files in its run folder (Hydra's main.log), held back in memory
    until `release` (the folder is the job's: they are written, and later ones go straight
    through) or `discard` (the job was refused: the folder's log stays as it was)."""

    def __init__(self, output_dir: Path) -> None:
        self._swapped: list[tuple[logging.Handler, logging.handlers.MemoryHandler]] = []
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.FileHandler) and \
                    Path(handler.baseFilename).resolve().parent == output_dir.resolve():
                held = logging.handlers.MemoryHandler(capacity=1 << 30, flushLevel=logging.CRITICAL + 1,
                                                      target=handler, flushOnClose=False)
                held.setLevel(handler.level)
                root.removeHandler(handler)
                root.addHandler(held)
                self._swapped.append((handler, held))

    def release(self) -> None:
        for handler, held in self._swapped:
            held.flush()
            logging.getLogger().removeHandler(held)
            logging.getLogger().addHandler(handler)
        self._swapped = []

    def discard(self) -> None:
        for handler, held in self._swapped:
            held.buffer.clear()
            logging.getLogger().removeHandler(held)
            logging.getLogger().addHandler(handler)
        self._swapped = []


class JobFolder:
    """The command line's part of the run folder: `claim` writes the .hydra files and lets the
    held log lines through; `refused` and `ended` (before a claim) keep the folder as it was."""

    def __init__(self, output_dir: Path, write_files: Callable[[], None]) -> None:
        self.output_dir = output_dir
        self._write_files = write_files
        self._log = HeldLog(output_dir)
        self.claimed = False

    def claim(self) -> None:
        if not self.claimed:
            self.claimed = True
            self._log.release()
            try:
                self._write_files()
            except OSError as error:  # the job's own records are written already; say what is missing
                log.warning("could not write %s: %s", self.output_dir / HYDRA_FILES, error.strerror or error)

    def refused(self) -> None:
        self._log.discard()

    def close(self) -> None:
        """Whatever ended the job (an interrupt, a bug), the lines held so far go to its log."""
        self._log.release()

    def ended(self, remove_below: Path | None) -> None:
        """The job ended without a result: an unclaimed folder it made is removed (under
        `remove_below`, with the parents it leaves empty; None keeps it), else its log is written."""
        if not self.claimed and remove_below is not None and \
                remove_if_unclaimed(self.output_dir, remove_below):
            self._log.discard()
        else:
            self._log.release()


def write_hydra_files(output_dir: Path, hydra_cfg, task_cfg, redactor: Redactor) -> None:
    """`.hydra/config.yaml`, `hydra.yaml` and `overrides.yaml` as Hydra writes them, with the
    secrets masked before they reach the disk. `hydra_cfg` is the whole Hydra node's parent."""
    folder = output_dir / HYDRA_FILES
    folder.mkdir(exist_ok=True)
    files = {"config.yaml": task_cfg, "hydra.yaml": hydra_cfg,
             "overrides.yaml": hydra_cfg.hydra.overrides.task}
    for name, node in files.items():
        write_text_atomic(folder / name, redactor.yaml(OmegaConf.to_yaml(node)))


def remove_if_unclaimed(output_dir: Path, keep_below: Path) -> bool:
    """Remove a run folder that holds nothing but what an unclaimed job makes (an empty main.log,
    the lock file), and the parents it leaves empty up to `keep_below`; True if it was removed."""
    try:
        names = {path.name for path in output_dir.iterdir()}
        log_file = output_dir / "main.log"
        if not names <= UNCLAIMED or log_file.is_file() and log_file.stat().st_size:
            return False
        for name in names:
            (output_dir / name).unlink(missing_ok=True)
        os.rmdir(output_dir)
        folder = output_dir.parent
        while keep_below in folder.parents:
            os.rmdir(folder)  # refused once a folder holds anything else
            folder = folder.parent
    except OSError:
        pass
    return not output_dir.exists()
