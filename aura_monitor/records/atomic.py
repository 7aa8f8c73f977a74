"""Atomic replacement of a file: readers see the old bytes or the new ones, never a mix."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from ..exceptions import ReporterError

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file size limit is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def describe_os_error(exc: OSError) -> str:
    """A short human reason for an OSError, without the traceback noise."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return exc.strerror or str(exc)


def write_atomically(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to a temp file beside `path`, then rename it onto `path`; fsync first when durable.

    Raises ReporterError (and leaves `path` untouched, no temp file behind) when the directory is gone
    or the device refuses the bytes.
    """
    directory = path.parent
    temp = directory / f"{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise ReporterError(
            f"cannot write {path}: the directory {directory} no longer exists "
            "(was the job or the jobs directory removed?)"
        ) from None
    except OSError as exc:
        raise ReporterError(f"cannot write {path}: {describe_os_error(exc)}") from exc
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            # close() can report a deferred write error (NFS), so it belongs inside the guarded block.
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        _discard(temp)
        if isinstance(exc, FileNotFoundError):
            raise ReporterError(f"cannot write {path}: the directory {directory} vanished while writing") from None
        raise ReporterError(f"cannot write {path}: {describe_os_error(exc)}; the previous record was kept") from exc
    if durable:
        _sync_directory(directory)


def _discard(temp: Path) -> None:
    with contextlib.suppress(OSError):  # already gone, or the directory vanished with it
        temp.unlink()


def _sync_directory(directory: Path) -> None:
    """Persist the rename itself; some file systems cannot fsync a directory, which is harmless."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # EINVAL on file systems without directory fsync
    finally:
        os.close(fd)
