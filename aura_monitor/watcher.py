"""Watches the jobs dir (inotify via watchdog, or polling) and names changed job files to the ingestor."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from .ingest import RECORD_NAME, Ingestor
from .record_inotify import RecordObserver

log = logging.getLogger(__name__)
_WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

# What the handler still receives (record events reach the ingestor directly, see record_inotify.py):
# directory events, and the created events watchdog simulates for the records of a job dir that appeared
# with them already inside. Modified, opened and closed-without-write events would only mean extra reads.
_EVENT_FILTER = [FileCreatedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


@dataclass(slots=True)
class WatcherStats:
    events: int = 0
    rescans: int = 0
    handler_errors: int = 0
    observer_restarts: int = 0
    overflows: int = 0


class _OverflowAlarm(logging.Handler):
    """watchdog only logs an inotify queue overflow; hearing that log line triggers an immediate rescan."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(level=logging.WARNING)
        self._watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._watcher.stats.overflows += 1
            self._watcher.rescan_now()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        # An exception escaping here silently kills watchdog's dispatcher thread.
        try:
            self._watcher.handle(event)
        except Exception:
            self._watcher.stats.handler_errors += 1
            log.exception("error handling %r", event)


class Watcher:
    """Keeps the ingestor informed of every job file; rescans fully at start, periodically and on trouble."""

    def __init__(
        self,
        root: Path,
        ingestor: Ingestor,
        backend: Literal["inotify", "polling"] = "inotify",
        rescan_interval: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.root = root
        self.ingestor = ingestor
        self.backend = backend
        self.rescan_interval = rescan_interval if backend == "inotify" else poll_interval
        self.stats = WatcherStats()
        self._observer: BaseObserver | None = None
        self._root_id: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._root_str = str(root)
        self._root_lost = False
        self._observer_started = False
        self._alarm = _OverflowAlarm(self)

    # -- state ---------------------------------------------------------------------------------
    @property
    def root_exists(self) -> bool:
        return self.root.is_dir()

    @property
    def observer_alive(self) -> bool:
        if self.backend == "polling":
            return self._thread is not None and self._thread.is_alive()
        observer = self._observer
        # When the watched dir is deleted, watchdog's emitter thread ends but the observer thread lives on.
        return (
            observer is not None
            and observer.is_alive()
            and bool(observer.emitters)
            and all(emitter.is_alive() for emitter in observer.emitters)
        )

    @property
    def ready(self) -> bool:
        return self._root_id is not None and self.observer_alive

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        if self.backend == "inotify":
            for name in _WATCHDOG_LOGGERS:
                logging.getLogger(name).addHandler(self._alarm)
        self._thread = threading.Thread(target=self._supervise, name="aura-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._alarm)
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._stop_observer()

    def rescan_now(self) -> None:
        self._kick.set()

    # -- the supervisor loop -------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._check_root()
            except Exception:
                log.exception("watcher supervision failed; retrying")
            interval = self.rescan_interval if self._root_id is not None else 0.5
            self._kick.wait(interval)
            self._kick.clear()

    def _check_root(self) -> None:
        try:
            st = os.stat(self.root)
            root_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            root_id = None
        if self._root_lost:
            self._root_lost = False
            self._root_id = None  # a recreated dir may reuse the old inode number
            self._stop_observer()
        if root_id != self._root_id:
            if self._root_id is not None:
                log.warning("jobs dir %s %s", self.root, "was replaced" if root_id else "disappeared; waiting")
            self._stop_observer()
            self._root_id = root_id
        if root_id is None:
            self.rescan()  # drops the jobs whose files are gone
            return
        if self.backend == "inotify" and not self.observer_alive:
            self._start_observer()
        self.rescan()

    def _start_observer(self) -> None:
        if self._observer_started:
            self.stats.observer_restarts += 1
        self._stop_observer()
        self._observer_started = True
        observer = RecordObserver(RECORD_NAME, self._record_event)
        observer.schedule(_Handler(self), self._root_str, recursive=True, event_filter=_EVENT_FILTER)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive() and threading.current_thread() is not observer:
                observer.join(timeout=2)

    # -- work ----------------------------------------------------------------------------------
    def rescan(self) -> int:
        """Name every changed job file and every vanished one to the ingestor; one stat per file."""
        self.stats.rescans += 1
        seen: set[str] = set()
        changed: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            entries = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                path = os.path.join(entry.path, RECORD_NAME)
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # no record (yet): a tracked job at this path is handled below
                seen.add(path)
                if not self.ingestor.unchanged(path, st):
                    changed.append(path)
        changed += [state.path for state in self.ingestor.tracker.jobs() if state.path not in seen]
        self.ingestor.touch_many(changed, force=False)
        return len(seen)

    def _record_event(self, path: str) -> None:
        """A job record was written, moved in or deleted (called on watchdog's inotify reader thread)."""
        self.stats.events += 1
        try:
            self.ingestor.touch(path)
        except Exception:  # escaping, it would end the reader thread every watch shares
            self.stats.handler_errors += 1
            log.exception("error handling an event for %s", path)

    def handle(self, event: FileSystemEvent) -> None:
        self.stats.events += 1
        paths = [event.src_path, getattr(event, "dest_path", "")] if event.event_type == "moved" else [event.src_path]
        for raw in paths:
            path = os.fsdecode(raw)
            if not path:
                continue
            if event.is_directory:
                if path == self._root_str:
                    self._root_lost = event.event_type in ("deleted", "moved")
                    self._kick.set()
                elif os.path.dirname(path) == self._root_str:
                    self.ingestor.touch(os.path.join(path, RECORD_NAME))
            elif os.path.basename(path) == RECORD_NAME:
                self.ingestor.touch(path)
