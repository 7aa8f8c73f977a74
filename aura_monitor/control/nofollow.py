"""The sidecar's writes inside a job dir, which never follow a symbolic link.

A job dir is written by less-trusted processes; a `<job>/requests -> /etc` link must not turn a retry into
a write anywhere. Each dir below the base is opened by name relative to its parent's descriptor with
O_NOFOLLOW|O_DIRECTORY, so no component can be swapped for a link between a check and the write; files are
created under an O_EXCL temp name in that descriptor and renamed onto their name with the same descriptor
(a rename replaces a link, it never writes through one). The base itself (the jobs dir or the state dir) is
the operator's choice and may be a link.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..exceptions import UnsafePath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refusal(dir_fd: int, name: str, shown: Path) -> UnsafePath | None:
    """Why `name` in `dir_fd` may not be written through, or None when it is a real dir (or absent)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return UnsafePath(f"{shown} is a symbolic link; refusing to write through it (remove the link)")
    if not stat.S_ISDIR(st.st_mode):
        return UnsafePath(f"{shown} is not a directory; refusing to write there (remove or rename it)")
    return None


@contextlib.contextmanager
def opened_dir(base: Path, parts: Sequence[tuple[str, bool]]) -> Iterator[int]:
    """A descriptor of `base/<part>/...`, each part opened without following links and created when its flag
    says so (a job dir is never recreated: it is the worker's). Raises UnsafePath or OSError."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    shown = base
    try:
        for name, create in parts:
            shown = shown / name
            if create:
                with contextlib.suppress(FileExistsError):  # mkdir never follows a link in the last component
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                refusal = _refusal(fd, name, shown)
                if refusal is not None:
                    raise refusal from None
                raise OSError(exc.errno, exc.strerror, str(shown)) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def refuse_link(dir_fd: int, name: str, shown: Path) -> None:
    """Raise UnsafePath when `name` exists in `dir_fd` as a symbolic link."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{shown} is a symbolic link; refusing to write through it (remove the link)")


def open_file(dir_fd: int, name: str, shown: Path, flags: int, mode: int = 0o644) -> int:
    """os.open of `name` in `dir_fd` that refuses a link in its place (the lock file)."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        refuse_link(dir_fd, name, shown)
        raise OSError(exc.errno, exc.strerror, str(shown)) from None


def replace_file(dir_fd: int, name: str, data: bytes, shown: Path, *, durable: bool = False) -> None:
    """Atomically make `name` in `dir_fd` hold `data`; refuses when `name` is a link. Raises OSError."""
    refuse_link(dir_fd, name, shown)
    temp = f"{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)  # close() can report a deferred write error (NFS): inside the guarded block
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise OSError(exc.errno, exc.strerror, str(shown)) from None
    if durable:
        with contextlib.suppress(OSError):  # EINVAL where a dir cannot be fsynced: harmless
            os.fsync(dir_fd)
