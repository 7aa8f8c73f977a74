"""One inotify watch on the jobs dir and one per job dir, read on a single thread; failed watches are kept.

The layout is flat (`<jobs>/<id>/job.json`), so nothing below a job dir is watched: a worker's frame or
cache tree inside a job dir costs no watch (watchdog's recursive watch spent one per junk subdir and
stopped adding them, silently, at `fs.inotify.max_user_watches`). A watch the kernel refuses (ENOSPC:
the per-user watch limit; ENOMEM) is remembered by name and retried by `retry_failed()`, so a job dir
created while the limit was reached is watched as soon as the limit is raised.

The jobs dir is watched at its resolved path (inotify on a symlink without following it watches the
link's own inode and hears nothing); paths reported to the sink are built on the configured path, the
one the ingestor and the rescan use. Job dirs are watched with IN_DONT_FOLLOW: a symlinked job dir is
not a job (the rescan skips it as well).

Record events go straight to the sink from the reader thread; an atomic writer's temp file and any file
beside the record are dropped there. IN_MOVED_FROM is asked for on the jobs dir only (a job dir moved
away); moves are never paired, so nothing waits for a partner event.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

RecordSink = Callable[[str], None]

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# Close-after-write (in-place writers such as Aura), created and moved-in (atomic writers), deleted. Not
# IN_MODIFY: it fires on every write() of a half-written file.
RECORD_EVENTS = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_ONLYDIR | IN_DONT_FOLLOW
ROOT_EVENTS = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
# Refusals that mean "out of inotify resources": worth retrying once the operator raises the limit.
RESOURCE_ERRORS = frozenset({errno.ENOSPC, errno.ENOMEM, errno.EMFILE, errno.ENFILE})

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)
_BUFFER = 256 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


class WatchLimitError(OSError):
    """The kernel refused an inotify instance or watch for lack of resources (see RESOURCE_ERRORS)."""


def _add_watch(fd: int, path: str, mask: int) -> int:
    wd = int(_libc.inotify_add_watch(fd, os.fsencode(path), mask))
    if wd < 0:
        code = ctypes.get_errno()
        cls = WatchLimitError if code in RESOURCE_ERRORS else OSError
        raise cls(code, os.strerror(code), path)
    return wd


class JobDirWatches:
    """The inotify watches of one jobs dir: the dir itself, and each job dir directly inside it."""

    def __init__(
        self,
        root: str,
        real_root: str,
        record_name: str,
        sink: RecordSink,
        on_root_lost: Callable[[], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.root = root
        self.real_root = real_root
        self._record_name = os.fsencode(record_name)
        self._record_str = record_name
        self._sink = sink
        self._on_root_lost = on_root_lost
        self._on_overflow = on_overflow
        self._lock = threading.Lock()
        self._by_wd: dict[int, str] = {}  # wd -> job dir name ("" for the jobs dir itself)
        self._by_name: dict[str, int] = {}
        self._failed: set[str] = set()  # names whose watch the kernel refused for lack of resources
        self._root_failed = False
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        fd = int(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            code = ctypes.get_errno()
            os.close(self._stop_r)
            os.close(self._stop_w)
            cls = WatchLimitError if code in RESOURCE_ERRORS else OSError
            raise cls(code, f"inotify_init1: {os.strerror(code)}")
        self._fd = fd
        try:
            self._watch_root()
        except OSError:  # not a resource refusal (permissions): nothing to watch, give the descriptors back
            for spare in (fd, self._stop_r, self._stop_w):
                os.close(spare)
            raise
        self._thread = threading.Thread(target=self._read_loop, name="aura-inotify", daemon=True)

    # -- state -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def watch_count(self) -> int:
        with self._lock:
            return len(self._by_wd)

    def unwatched(self) -> list[str]:
        """Dirs that should be watched and are not (the kernel refused), the jobs dir itself first."""
        with self._lock:
            names = sorted(self._failed)
            return ([self.root] if self._root_failed else []) + [os.path.join(self.root, n) for n in names]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
        for fd in (self._fd, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- watches -----------------------------------------------------------------------------------
    def _watch_root(self) -> None:
        try:
            wd = _add_watch(self._fd, self.real_root, ROOT_EVENTS)
        except WatchLimitError:
            self._root_failed = True
            return
        with self._lock:
            self._root_failed = False
            self._by_wd[wd] = ""

    def _watch(self, name: str) -> bool:
        """Watch one job dir; False when it could not be (gone, not a dir, or refused: then remembered)."""
        try:
            wd = _add_watch(self._fd, os.path.join(self.real_root, name), RECORD_EVENTS)
        except WatchLimitError:
            with self._lock:
                self._failed.add(name)
            return False
        except OSError:  # gone again, a symlink or a file: not a job dir
            with self._lock:
                self._failed.discard(name)
            return False
        with self._lock:
            self._failed.discard(name)
            old = self._by_name.get(name)
            if old is not None and old != wd:
                self._by_wd.pop(old, None)  # the name now holds another dir (its IN_IGNORED was lost)
            self._by_name[name] = wd
            self._by_wd[wd] = name
        return True

    def _unwatch(self, name: str, *, remove: bool) -> None:
        with self._lock:
            self._failed.discard(name)
            wd = self._by_name.pop(name, None)
            if wd is not None:
                self._by_wd.pop(wd, None)
        if remove and wd is not None:
            _libc.inotify_rm_watch(self._fd, wd)  # a dir moved away keeps its inode: stop hearing it

    def ensure(self, names: Iterable[str], *, refresh: bool = False) -> None:
        """Watch every job dir named (the rescan's listing) that is not watched yet; forget vanished failures.

        With `refresh` (after a queue overflow, whose lost events may include a dir's replacement) every
        name is watched again: the kernel answers the same descriptor for a dir it already watches.
        """
        wanted = set(names)
        with self._lock:
            missing = set(wanted) if refresh else wanted.difference(self._by_name)
            self._failed &= wanted
            if refresh:
                for name in set(self._by_name).difference(wanted):
                    self._by_wd.pop(self._by_name.pop(name), None)
        for name in sorted(missing):
            self._watch(name)

    def retry_failed(self) -> None:
        """Try again every watch the kernel refused (the operator may have raised the limit)."""
        if self._root_failed:
            with contextlib.suppress(OSError):  # the jobs dir went away: the supervisor notices that itself
                self._watch_root()
        with self._lock:
            names = sorted(self._failed)
        for name in names:
            if self._watch(name):
                self._sink(os.path.join(self.root, name, self._record_str))  # written while nobody listened
            elif name in self._failed:
                break  # still refused: the rest would be too; try again next time

    # -- events ------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            try:
                buffer = os.read(self._fd, _BUFFER)
            except BlockingIOError:
                continue
            except OSError:
                log.exception("reading inotify events of %s failed; the rescan still runs", self.root)
                return
            self._dispatch(buffer)

    def _dispatch(self, buffer: bytes) -> None:
        offset, size = 0, len(buffer)
        while offset < size:
            wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
            start = offset + _HEADER.size
            name = buffer[start : start + length].rstrip(b"\0")
            offset = start + length
            try:
                self._event(wd, mask, name)
            except Exception:  # escaping, it would end the only reader thread
                log.exception("error handling an inotify event in %s", self.root)

    def _event(self, wd: int, mask: int, name: bytes) -> None:
        if mask & IN_Q_OVERFLOW:
            self._on_overflow()
            return
        owner = self._by_wd.get(wd)  # a dict read is atomic; the lock guards the two maps' consistency
        if owner is None:
            return
        if owner:  # inside a job dir
            if mask & IN_IGNORED:
                with self._lock:
                    if self._by_name.get(owner) == wd:
                        del self._by_name[owner]
                    self._by_wd.pop(wd, None)
            elif name == self._record_name:
                self._sink(os.path.join(self.root, owner, self._record_str))
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT):
            self._on_root_lost()
            return
        if not mask & IN_ISDIR or not name:
            return  # a file directly in the jobs dir is no job
        job = os.fsdecode(name)
        if mask & (IN_CREATE | IN_MOVED_TO):
            self._watch(job)  # before the read below, so no write between the two goes unheard
        elif mask & (IN_DELETE | IN_MOVED_FROM):
            self._unwatch(job, remove=bool(mask & IN_MOVED_FROM))
        self._sink(os.path.join(self.root, job, self._record_str))
