"""Reading files whose paths come from untrusted records: regular files under allowed roots, never blocking.

A record may name any path (`/proc/self/environ`, a FIFO, a symlink to `/etc/shadow`). Content is only
ever read from a regular file whose real location is under an allowed root; everything else is refused
with a reason a support engineer can act on, and the file is not opened (or closed unread when a race
swapped it between the check and the open).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

# Absent on Windows: there a FIFO cannot be opened by path and links are resolved by the realpath check.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FD_LINKS = "/proc/self/fd"
MISSING = "does not exist"
_HINT = "; if that directory is trusted, let the sidecar read it with --read-root DIR"

__all__ = ["MISSING", "ReadRefused", "ReadRoots", "kind_of", "open_regular", "read_head", "read_tail", "tail_or_reason"]


class ReadRefused(Exception):
    """The path was not read, on purpose; `reason` says why in one line."""

    def __init__(self, reason: str, *, outside: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outside = outside  # refused only for its place: an operator may trust that place


def kind_of(mode: int) -> str:
    """The file type of a stat mode in words."""
    for test, word in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISREG, "regular file"),
    ):
        if test(mode):
            return word
    return "special file"


class ReadRoots:
    """The directories content may be read from, each kept both as given (absolute) and resolved."""

    def __init__(self, dirs: Iterable[str | os.PathLike[str]]) -> None:
        self.given = tuple(dict.fromkeys(os.path.abspath(os.fspath(d)) for d in dirs))
        self._resolve()

    def _resolve(self) -> None:
        roots = tuple(dict.fromkeys((*self.given, *(os.path.realpath(d) for d in self.given))))
        # One str.startswith over a tuple: this runs on every record read.
        self._exact = frozenset(roots)
        self._prefixes = tuple(root if root.endswith(os.sep) else root + os.sep for root in roots)

    def _contains(self, path: str) -> bool:
        return path.startswith(self._prefixes) or path in self._exact

    def lexically_contains(self, path: str) -> bool:
        """Whether the normalized absolute `path` is under a root (no file system access)."""
        return self._contains(path)

    def really_contains(self, real: str) -> bool:
        """Whether the resolved `real` path is under a root; roots are re-resolved once on a miss, so a jobs
        dir replaced by a symlink after start is followed rather than refused forever."""
        if self._contains(real):
            return True
        self._resolve()
        return self._contains(real)

    def __repr__(self) -> str:
        return f"ReadRoots({', '.join(self.given)})"


def _opened_path(fd: int, fallback: str) -> str:
    """Where the kernel says `fd` lives (race-free on Linux); elsewhere the resolved path."""
    try:
        return os.readlink(f"{_FD_LINKS}/{fd}")
    except OSError:
        return os.path.realpath(fallback)


def open_regular(path: str, roots: ReadRoots) -> tuple[int, os.stat_result]:
    """An fd opened read-only on the regular file `path` under `roots`, with its fstat.

    Raises ReadRefused for anything that must not be read, OSError (FileNotFoundError, PermissionError) as
    the OS raised it. The caller closes the fd.
    """
    if "\0" in path:
        raise ReadRefused("the path contains a NUL byte")
    absolute = os.path.abspath(path)
    if not roots.lexically_contains(absolute):
        raise ReadRefused(f"outside the allowed roots ({absolute})", outside=True)
    target = absolute
    st = os.lstat(absolute)  # lstat never opens, so a FIFO or a device is judged without side effects
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(absolute)
        if not roots.really_contains(target):
            raise ReadRefused(f"a symbolic link to {target}, outside the allowed roots", outside=True)
        st = os.lstat(target)
    if not stat.S_ISREG(st.st_mode):
        raise ReadRefused(f"not a regular file ({kind_of(st.st_mode)})")
    fd = os.open(target, _OPEN_FLAGS)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped between lstat and open
            raise ReadRefused(f"not a regular file ({kind_of(fst.st_mode)})")
        where = _opened_path(fd, target)
        # Equal to the checked path means no link anywhere on the way; otherwise a directory on the way
        # is (or became) a link, and only the real location counts.
        if where != absolute and not roots.really_contains(where):
            raise ReadRefused(f"resolves to {where}, outside the allowed roots", outside=True)
    except BaseException:
        os.close(fd)
        raise
    return fd, fst


def read_head(path: str, roots: ReadRoots, limit: int) -> tuple[bytes, os.stat_result]:
    """At most `limit` bytes from the start of the file (callers compare with st_size to see truncation)."""
    fd, st = open_regular(path, roots)
    try:
        return os.read(fd, max(0, limit)), st
    finally:
        os.close(fd)


def read_tail(path: str, roots: ReadRoots, limit: int) -> tuple[bytes, os.stat_result]:
    """The last `limit` bytes of the file, with its fstat."""
    fd, st = open_regular(path, roots)
    try:
        if st.st_size > limit:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        return os.read(fd, max(0, limit)), st
    finally:
        os.close(fd)


def tail_or_reason(path: str, roots: ReadRoots, limit: int) -> tuple[bytes, os.stat_result] | str:
    """read_tail(), or the one-line reason it was not read (refused, missing, denied)."""
    try:
        return read_tail(path, roots, limit)
    except ReadRefused as exc:
        return exc.reason + (_HINT if exc.outside else "")
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        return exc.strerror or str(exc)
