"""Watches the jobs dir (inotify, or watchdog's polling observer) and names changed job files to the ingestor."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, cast

from watchdog.events import (
    DirDeletedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.polling import PollingObserverVFS

from ..records.layout import RECORD_NAME
from .ingest import Ingestor
from .inotify import JobDirWatches, WatchLimitError

log = logging.getLogger(__name__)

_Sink = Callable[[str], None]
_Callback = Callable[[], None]

# How often the supervisor checks that the jobs dir (or the link naming it) still resolves to the dir it
# watches, and retries refused watches; both are a few syscalls.
_TICK = 1.0
_RETRY_INTERVAL = 5.0
# Between full sweeps, a periodic rescan with inotify healthy stats only the records inotify might not report
# on time: active jobs (the stall deadline depends on them) and dirs without a watch. A finished job's
# record changes rarely (a retry) and inotify reports that; the full sweep is the safety net for what it
# missed (a write through a hard link elsewhere, a filesystem that drops events). At 100,000 jobs, 80%
# finished, this is 20,000 stats every 30 s instead of 100,000 plus a listing of the jobs dir.
SWEEP_INTERVAL = 600.0
# Repeats of the "not watched" warning while it lasts: often enough to be found in a log, never a flood.
_UNWATCHED_LOG_INTERVAL = 300.0
LIMIT_ADVICE = (
    "raise the inotify watch limit, e.g. `sysctl -w fs.inotify.max_user_watches=524288` "
    "(persist it in /etc/sysctl.d/), or run with --watch polling"
)
INSTANCE_ADVICE = (
    "raise the inotify instance limit, e.g. `sysctl -w fs.inotify.max_user_instances=1024` "
    "(persist it in /etc/sysctl.d/), or run with --watch polling"
)


@dataclass(slots=True)
class WatcherStats:
    events: int = 0
    rescans: int = 0  # every rescan, full sweeps included
    sweeps: int = 0  # full ones: the jobs dir listed and every record stat'ed
    last_rescan_stats: int = 0  # records the last rescan stat'ed
    handler_errors: int = 0
    observer_restarts: int = 0
    overflows: int = 0
    unwatched_dirs: int = 0  # dirs that should have an inotify watch and do not (the kernel refused)


class Watcher:
    """Keeps the ingestor informed of every job file; rescans fully at start, periodically and on trouble."""

    def __init__(
        self,
        root: Path,
        ingestor: Ingestor,
        backend: Literal["inotify", "polling"] = "inotify",
        rescan_interval: float = 30.0,
        poll_interval: float = 1.0,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.root = root
        self.ingestor = ingestor
        self.backend = backend
        self.rescan_interval = rescan_interval
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.stats = WatcherStats()
        self._watches: JobDirWatches | None = None
        self._poller: PollingObserverVFS | None = None
        self._watch_error: str | None = None
        self._watch_advice = INSTANCE_ADVICE
        self._root_id: tuple[int, int] | None = None
        self._real_root: str | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._root_str = str(root)
        self._root_lost = False
        self._watches_started = False
        self._next_rescan = 0.0
        self._next_sweep = 0.0
        self._next_retry = 0.0
        self._unwatched_logged_at: float | None = None
        self._refresh_watches = False

    # -- state ---------------------------------------------------------------------------------
    @property
    def root_exists(self) -> bool:
        return self.root.is_dir()

    @property
    def real_root(self) -> str | None:
        """The dir actually watched: the jobs dir with every symlink resolved."""
        return self._real_root

    @property
    def observer_alive(self) -> bool:
        """The supervisor runs and, with inotify, the event reader runs (or could not start: see degraded)."""
        if self._thread is None or not self._thread.is_alive():
            return False
        if self.backend == "polling":
            return self._root_id is None or (self._poller is not None and self._poller.is_alive())
        watches = self._watches
        return (watches is not None and watches.alive) or self._watch_error is not None

    @property
    def ready(self) -> bool:
        return self._root_id is not None and self.observer_alive

    def unwatched(self) -> list[str]:
        """Dirs that get no inotify events (only the rescan sees them), the jobs dir first."""
        if self.backend == "polling" or self._root_id is None:
            return []  # the poller lists every dir it needs, no kernel resource per dir
        if self._watch_error is not None:
            return [self._root_str]
        watches = self._watches
        return watches.unwatched() if watches is not None else []

    def degraded_reasons(self) -> list[str]:
        """Why the watcher is ready but blind to some changes, in words an operator can act on."""
        reasons = []
        if self._watch_error is not None and self._root_id is not None:
            reasons.append(
                f"inotify unavailable ({self._watch_error}); changes are seen only by the rescan every "
                f"{self.rescan_interval:g}s: {self._watch_advice}"
            )
        elif unwatched := self.unwatched():
            reasons.append(
                f"{len(unwatched)} dir(s) are not watched because the inotify watch limit is reached (e.g. "
                f"{unwatched[0]}); their updates are seen only by the rescan every {self.rescan_interval:g}s: "
                f"{LIMIT_ADVICE}"
            )
        return reasons

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="aura-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._stop_watches()

    def rescan_now(self) -> None:
        self._kick.set()

    # -- the supervisor loop -------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("watcher supervision failed; retrying")
            interval = min(self.rescan_interval, _TICK) if self._root_id is not None else 0.5
            self._kick.wait(interval)
            if self._kick.is_set():
                self._kick.clear()
                self._next_rescan = self._next_sweep = 0.0  # a kick (overflow, lost root, rescan_now) is a sweep

    def _tick(self) -> None:
        changed = self._check_root()
        now = time.monotonic()
        if changed or self._root_id is None or now >= self._next_sweep or not self._light_rescan_ok:
            self._next_sweep = now + self.sweep_interval
            self._next_rescan = now + self.rescan_interval
            self.rescan()  # with no root, drops the jobs whose files are gone
        elif now >= self._next_rescan:
            self._next_rescan = now + self.rescan_interval
            self.rescan_active()
        if self._watches is not None and now >= self._next_retry and self._watches.unwatched():
            self._next_retry = now + _RETRY_INTERVAL
            self._watches.retry_failed()
        self._report_unwatched(now)

    def _check_root(self) -> bool:
        """Follow the jobs dir (and a link naming it); True when what it names changed."""
        try:
            st = os.stat(self.root)
            root_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
            real_root: str | None = os.path.realpath(self.root)
        except OSError:
            root_id, real_root = None, None
        if self._root_lost:
            self._root_lost = False
            self._root_id = None  # a recreated dir may reuse the old inode number
            self._stop_watches()
        changed = root_id != self._root_id or real_root != self._real_root
        if changed:
            if self._root_id is not None:
                if root_id is None:
                    log.warning("jobs dir %s disappeared; waiting for it to come back", self.root)
                elif real_root != self._real_root:
                    log.warning(
                        "jobs dir %s now points to %s (was %s); rescanning", self.root, real_root, self._real_root
                    )
                else:
                    log.warning("jobs dir %s was replaced; rescanning", self.root)
            self._stop_watches()
            self._root_id, self._real_root = root_id, real_root
        if root_id is not None and not self._watching:
            # A rescan follows new watches (what changed before they existed); a refused instance is retried
            # each tick without one, so the rescan keeps the pace it announces.
            changed = self._start_watches() or changed
        return changed

    @property
    def _watching(self) -> bool:
        if self.backend == "polling":
            return self._poller is not None and self._poller.is_alive()
        watches = self._watches
        return watches is not None and watches.alive

    @property
    def _light_rescan_ok(self) -> bool:
        """Whether inotify reports the jobs dir and finished jobs' records (else every rescan is a sweep)."""
        watches = self._watches
        return (
            self.backend == "inotify"
            and watches is not None
            and watches.alive
            and not self._refresh_watches
            and not (watches.unwatched() and watches.unwatched()[0] == self._root_str)
        )

    def _start_watches(self) -> bool:
        assert self._real_root is not None
        if self._watches_started and self._watch_error is None:  # not each retry of a refused inotify instance
            self.stats.observer_restarts += 1
        if self.backend == "polling":
            return self._start_polling()
        self._stop_watches()
        self._watches_started = True
        try:
            watches = JobDirWatches(
                self._root_str, self._real_root, RECORD_NAME, self._record_event, self._lose_root, self._overflowed
            )
        except WatchLimitError as exc:
            self._watch_error = f"{exc.strerror}: the kernel refused an inotify instance"
            self._watch_advice = INSTANCE_ADVICE
            return False
        except OSError as exc:
            self._watch_error = f"cannot watch {self._real_root}: {exc.strerror}"
            self._watch_advice = "check that the sidecar's user may read the jobs dir, or run with --watch polling"
            return False
        self._watch_error = None
        self._watches = watches
        return True

    def _start_polling(self) -> bool:
        """watchdog's polling observer on the jobs dir, two levels deep (see _PolledRecords)."""
        self._stop_watches()
        self._watches_started = True
        records = _PolledRecords(self._root_str, self._record_event, self._lose_root)
        poller = PollingObserverVFS(os.stat, records.listdir, polling_interval=self.poll_interval)
        poller.name = "aura-poller"
        poller.schedule(records, self._root_str, recursive=True, event_filter=list(_POLLED_EVENTS))
        poller.start()
        self._poller = poller
        return True

    def _stop_watches(self) -> None:
        watches, self._watches = self._watches, None
        poller, self._poller = self._poller, None
        self._watch_error = None
        if watches is not None:
            watches.close()
        if poller is not None:
            poller.stop()
            if threading.current_thread() is not poller:
                poller.join(timeout=5)

    def _lose_root(self) -> None:
        self._root_lost = True
        self._kick.set()

    def _overflowed(self) -> None:
        self.stats.overflows += 1
        self._refresh_watches = True
        log.warning("inotify queue of %s overflowed: events were lost; rescanning now", self.root)
        self._kick.set()

    def _report_unwatched(self, now: float) -> None:
        unwatched = self.unwatched()
        before, self.stats.unwatched_dirs = self.stats.unwatched_dirs, len(unwatched)
        if not unwatched:
            if before and self._root_id is not None:
                log.warning("every job dir in %s is watched again (%d dir(s) went unwatched)", self.root, before)
            self._unwatched_logged_at = None
            return
        if self._unwatched_logged_at is None or now - self._unwatched_logged_at >= _UNWATCHED_LOG_INTERVAL:
            self._unwatched_logged_at = now
            retry = _TICK if self._watch_error is not None else _RETRY_INTERVAL
            log.warning("watcher degraded: %s; retrying every %gs", self.degraded_reasons()[0], retry)

    # -- work ----------------------------------------------------------------------------------
    def rescan(self) -> int:
        """The full sweep: name every changed job file and every vanished one to the ingestor; one stat per file."""
        self.stats.rescans += 1
        seen: set[str] = set()
        changed: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            entries = []
        dirs = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
        if self._watches is not None:
            # A dir whose creation event was lost or refused gets its watch; after an overflow, every dir.
            # Watch first, then stat: a record moved in before the watch existed is seen by the stat below,
            # one moved in after it is heard. (Stat first, and a record landing between the two went unseen
            # until the next full sweep: a job created as the sidecar started stayed invisible for minutes.)
            refresh, self._refresh_watches = self._refresh_watches, False
            self._watches.ensure(dirs, refresh=refresh)
        for name in dirs:
            path = os.path.join(self._root_str, name, RECORD_NAME)
            try:
                st = os.stat(path)
            except OSError:
                continue  # no record (yet): a tracked job at this path is handled below
            seen.add(path)
            if not self.ingestor.unchanged(path, st):
                changed.append(path)
        changed += [state.path for state in self.ingestor.tracker.jobs() if state.path not in seen]
        self.ingestor.touch_many(changed, force=False)
        self.stats.last_rescan_stats = len(dirs)
        self.stats.sweeps += 1  # after the records are queued: sweeps >= 1 and an idle ingestor = scanned
        return len(seen)

    def rescan_active(self) -> int:
        """The periodic rescan between sweeps: stat the records of active jobs and of unwatched dirs only."""
        self.stats.rescans += 1
        tracker = self.ingestor.tracker
        with tracker.lock:
            paths = [state.path for state in tracker.states(tracker.index.active())]
        watches = self._watches
        if watches is not None:
            paths += [os.path.join(d, RECORD_NAME) for d in watches.unwatched() if d != self._root_str]
        changed: list[str] = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                changed.append(path)  # gone: the ingestor drops the job (or a new dir's record is not there yet)
                continue
            if not self.ingestor.unchanged(path, st):
                changed.append(path)
        self.ingestor.touch_many(changed, force=False)
        self.stats.last_rescan_stats = len(paths)
        return len(paths)

    def _record_event(self, path: str) -> None:
        """A job record was written, moved in or deleted, or a job dir came or went (reader or poller thread)."""
        self.stats.events += 1
        try:
            self.ingestor.touch(path)
        except Exception:  # escaping, it would end the reader thread
            self.stats.handler_errors += 1
            log.exception("error handling an event for %s", path)


# What a poll reports that matters: the record's own changes, and the jobs dir gone (the poller then stops).
_POLLED_EVENTS = (FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent, DirDeletedEvent)


class _Named(NamedTuple):
    """The one field of an os.DirEntry that watchdog's DirectorySnapshot.walk reads."""

    name: str


class _PolledRecords(FileSystemEventHandler):
    """The listing and the handler for watchdog's polling observer on a jobs dir.

    The snapshot walks the jobs dir and, in each job dir (not a link to one), the record alone: a job dir's
    frame or cache tree is never listed, so a poll costs a listing of the jobs dir and two stats per job.
    Events reach the ingestor from the observer's dispatcher thread, the single hand-off after the poll.
    """

    def __init__(self, root: str, sink: _Sink, on_root_lost: _Callback) -> None:
        self._root = root
        self._sink = sink
        self._on_root_lost = on_root_lost
        self._record = [_Named(RECORD_NAME)]

    def listdir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        if path != self._root:
            return cast("Iterator[os.DirEntry[str]]", iter(self._record))  # the snapshot stats it, if it exists
        with os.scandir(path) as entries:
            return iter([entry for entry in entries if entry.is_dir(follow_symlinks=False)])

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirDeletedEvent):
            if event.src_path == self._root:
                self._on_root_lost()
            return
        for path in (event.src_path, event.dest_path):
            if path and os.path.basename(path) == RECORD_NAME:
                self._sink(os.fsdecode(path))
