"""One inotify watch on the jobs dir and one per job dir, on watchdog's inotify reader thread; failed watches are kept.

watchdog is the user's choice of watcher. Its inotify layer (`watchdog.observers.inotify_c.InotifyFD`: one
thread reading the kernel's events and calling each watch's callbacks) is used directly, without its
observer, emitter and dispatcher threads, so that one thread goes from the kernel's events to the ingestor.
This touches watchdog internals (`InotifyFD._lock`, `_get_or_create_watch`, `Watch.callbacks`, the callback
protocol on_event / on_watch_deleted / on_queue_overflow), hence the pin `watchdog>=7.1,<8` in pyproject.toml;
tests/test_watch_inotify.py fails if they move or change.

The layout is flat (`<jobs>/<id>/job.json`), so nothing below a job dir is watched: a worker's frame or
cache tree inside a job dir costs no watch (watchdog's recursive observer spent one per junk subdir and
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
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Final

from watchdog.observers.inotify_c import (
    DEFAULT_EVENT_BUFFER_SIZE,
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)

log = logging.getLogger(__name__)

RecordSink = Callable[[str], None]

_C = InotifyConstants
# Close-after-write (in-place writers such as Aura), created and moved-in (atomic writers), deleted. Not
# IN_MODIFY: it fires on every write() of a half-written file.
RECORD_EVENTS: Final = Mask(
    _C.IN_CREATE | _C.IN_MOVED_TO | _C.IN_CLOSE_WRITE | _C.IN_DELETE | _C.IN_ONLYDIR | _C.IN_DONT_FOLLOW
)
ROOT_EVENTS: Final = Mask(
    _C.IN_CREATE
    | _C.IN_MOVED_TO
    | _C.IN_MOVED_FROM
    | _C.IN_DELETE
    | _C.IN_DELETE_SELF
    | _C.IN_MOVE_SELF
    | _C.IN_ONLYDIR
)
_ROOT_GONE: Final = _C.IN_DELETE_SELF | _C.IN_MOVE_SELF | _C.IN_UNMOUNT
# Refusals that mean "out of inotify resources": worth retrying once the operator raises the limit.
RESOURCE_ERRORS = frozenset({errno.ENOSPC, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
# Our one callback on every watch of an instance (watchdog keys a watch's callbacks by an id).
_CALLBACK: Final = CallbackId(0)


class WatchLimitError(OSError):
    """The kernel refused an inotify instance or watch for lack of resources (see RESOURCE_ERRORS)."""


def _refusal(exc: OSError, path: str) -> OSError:
    """The error to raise for a refused watch: WatchLimitError for a lack of resources, with the path."""
    code = exc.errno or errno.EIO
    cls = WatchLimitError if code in RESOURCE_ERRORS else OSError
    return cls(code, exc.strerror or os.strerror(code), path)


class JobInotifyFD(InotifyFD):
    """watchdog's inotify reader (a private instance, not the shared `get_instance()`), with two changes.

    - `watch()` (re)registers a callback on a path and raises every refusal: watchdog's `add_callback` warns
      when a watch gets the same callback id again (the overflow re-watch does that on purpose), and its
      `_raise_error` returns silently on EACCES, leaving a watch with wd -1 in its table.
    - `read_events()` drops the events of files other than `record_name` before watchdog builds an event
      object and takes its lock for each: two of an atomic writer's three events are its temp file's
      (measured: 19 -> 9 us of reader CPU per atomic update).
    """

    def __init__(self, record_name: bytes = b"") -> None:
        self._record_name = record_name
        try:
            super().__init__()
        except OSError as exc:  # EMFILE: fs.inotify.max_user_instances reached
            raise _refusal(exc, "inotify_init") from None
        # watchdog calls inotify_init(), not inotify_init1(IN_CLOEXEC): keep the fd out of child processes.
        os.set_inheritable(self._inotify_fd, False)
        self.name = "aura-inotify"

    def watch(self, path: str, mask: Mask, callback: WatchCallback) -> WatchDescriptor:
        """Watch `path` for `callback`; the kernel answers the same descriptor for a dir already watched."""
        with self._lock:
            try:
                watch = self._get_or_create_watch(os.fsencode(path), mask)
            except OSError as exc:
                raise _refusal(exc, path) from None
            if watch.wd == -1:  # EACCES, let through by watchdog's _raise_error
                del self._watch_for_wd[watch.wd]
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            watch.callbacks[_CALLBACK] = callback
            return watch.wd

    def read_events(self, *, event_buffer_size: int = DEFAULT_EVENT_BUFFER_SIZE) -> list[InotifyEvent]:
        """As watchdog's, keeping only what a JobDirWatches uses: dirs, nameless events, the record's."""
        record = self._record_name
        return [
            InotifyEvent(wd, mask, cookie, name)
            for wd, mask, cookie, name in self._parse_event_buffer(self._read_event_buffer(event_buffer_size))
            if (wd != -1 and (not name or name == record or mask & _C.IN_ISDIR)) or mask & _C.IN_Q_OVERFLOW
        ]

    def unwatch(self, wd: WatchDescriptor) -> None:
        """Stop hearing a watch (a dir moved away keeps its inode, and its watch would follow it)."""
        with contextlib.suppress(OSError):  # already gone: the kernel dropped it
            self.remove_callbacks([(wd, _CALLBACK)])


class JobDirWatches:
    """The inotify watches of one jobs dir: the dir itself, and each job dir directly inside it.

    Implements watchdog's WatchCallback protocol; its methods run on the reader thread.
    """

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
        self._closing = False
        self.inotify = JobInotifyFD(self._record_name)
        # Started before the first watch: stopping a running reader is what closes watchdog's descriptors.
        self.inotify.start()
        try:
            self._watch_root()
        except OSError:  # not a resource refusal (permissions): nothing to watch
            self.close()
            raise

    # -- state -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.inotify.is_alive()

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
    def close(self) -> None:
        self._closing = True  # watchdog reports each watch it removes on close as deleted: not a lost root
        self.inotify.stop()
        if self.inotify.is_alive() and threading.current_thread() is not self.inotify:
            self.inotify.join(timeout=2)

    # -- watches -----------------------------------------------------------------------------------
    def _watch_root(self) -> None:
        try:
            wd = self.inotify.watch(self.real_root, ROOT_EVENTS, self)
        except WatchLimitError:
            self._root_failed = True
            return
        with self._lock:
            self._root_failed = False
            self._by_wd[wd] = ""

    def _watch(self, name: str) -> bool:
        """Watch one job dir; False when it could not be (gone, not a dir, or refused: then remembered)."""
        try:
            wd = self.inotify.watch(os.path.join(self.real_root, name), RECORD_EVENTS, self)
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
            self.inotify.unwatch(WatchDescriptor(wd))

    def ensure(self, names: Iterable[str], *, refresh: bool = False) -> None:
        """Watch every job dir named (the rescan's listing) that is not watched yet; forget vanished failures.

        With `refresh` (after a queue overflow, whose lost events may include a dir's replacement) every
        name is watched again: the kernel answers the same descriptor for a dir it already watches.
        """
        wanted = set(names)
        stale: list[int] = []
        with self._lock:
            missing = set(wanted) if refresh else wanted.difference(self._by_name)
            self._failed &= wanted
            if refresh:
                for name in set(self._by_name).difference(wanted):
                    stale.append(self._by_name.pop(name))
                    self._by_wd.pop(stale[-1], None)
        for wd in stale:  # their IN_IGNORED may be among the lost events: drop them from watchdog's table too
            self.inotify.unwatch(WatchDescriptor(wd))
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

    # -- watchdog's WatchCallback (reader thread; an exception escaping would end the reader) --------
    def on_event(self, event: InotifyEvent) -> None:
        try:
            self._event(event.wd, event.mask, event.name)
        except Exception:
            log.exception("error handling an inotify event in %s; the rescan still runs", self.root)

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        """The kernel dropped a watch (IN_IGNORED: its dir was deleted), or close() removed it."""
        if self._closing:
            return
        with self._lock:
            owner = self._by_wd.pop(wd, None)
            if owner and self._by_name.get(owner) == wd:
                del self._by_name[owner]
        if owner == "":
            self._on_root_lost()

    def on_queue_overflow(self) -> None:
        try:
            self._on_overflow()
        except Exception:
            log.exception("error handling an inotify queue overflow in %s", self.root)

    def _event(self, wd: int, mask: int, name: bytes) -> None:
        owner = self._by_wd.get(wd)  # a dict read is atomic; the lock guards the two maps' consistency
        if owner is None:
            return
        if owner:  # inside a job dir
            if name == self._record_name:
                self._sink(os.path.join(self.root, owner, self._record_str))
            return
        if mask & _ROOT_GONE:
            self._on_root_lost()
            return
        if not mask & _C.IN_ISDIR or not name:
            return  # a file directly in the jobs dir is no job
        job = os.fsdecode(name)
        if mask & (_C.IN_CREATE | _C.IN_MOVED_TO):
            self._watch(job)  # before the read below, so no write between the two goes unheard
        elif mask & (_C.IN_DELETE | _C.IN_MOVED_FROM):
            self._unwatch(job, remove=bool(mask & _C.IN_MOVED_FROM))
        self._sink(os.path.join(self.root, job, self._record_str))
