"""Writing files so that readers see whole records, never half of one, and a refused write
becomes one clear line that says how to go on."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from seidr.errors import SeidrError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or the user's quota spent
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, sync it, and rename it over `path`. The file gets
    the mode any new file gets (the umask applies), not a private temporary file's 0600."""
    temporary, handle = _create_beside(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def append_durably(path: Path, data: bytes) -> None:
    """Append `data` to `path` and sync it. If the write fails part way (a full disk), the file is
    cut back to where it was, so no partial record stays behind."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(handle, 0, os.SEEK_END)
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(handle, rest):]
            os.fsync(handle)
        except OSError:
            try:
                os.ftruncate(handle, start)  # shrinking needs no space
            except OSError:
                pass  # the next load cuts a torn last line anyway
            raise
    finally:
        os.close(handle)


def cannot_write(path: Path, error: OSError, run_dir: Path | None = None) -> SeidrError:
    """A refused write as one line: what could not be written, why, and how to go on."""
    reason = error.strerror or str(error)
    if error.errno in NO_SPACE:
        fix = "free space"
    elif error.errno in _NOT_WRITABLE:
        fix = f"make {path.parent} writable"
    else:
        fix = "fix that"
    again = f"rerun with hydra.run.dir={run_dir} to resume" if run_dir is not None else "rerun"
    return SeidrError(f"cannot write {path}: {reason}; {fix} and {again}")


def _create_beside(path: Path) -> tuple[Path, int]:
    # os.open applies the umask to 0o666, as for any new file; mkstemp would force 0600
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; a file system that cannot sync a folder is left as it is."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
