"""watchdog's inotify observer, tuned for directories of job records.

An atomic writer's update is three kernel events (its temp file created and closed, the record moved into
place) and watchdog sends each through three threads: its inotify reader, its emitter and its dispatcher,
then our handler drops two of them. At 1,000 updates/s those hand-offs were most of the watcher's CPU.
Here, in watchdog's reader thread:
- events of files other than the record are dropped at once;
- record events go straight to the sink (the ingestor's touch), skipping the emitter and the dispatcher;
- directory events and those of the watched dir itself take watchdog's usual path, which keeps the
  recursive watches, their moves and the dir's deletion right;
- IN_MOVED_FROM is not asked for, so nothing is held back 0.5 s or paired by scanning the pending queue.

This relies on watchdog internals (InotifyWatchGroup.on_event and its move grouper), hence the pin
`watchdog>=7.1,<8`; tests/test_watcher.py checks they are still in place.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from watchdog.observers.api import EventEmitter
from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, Mask
from watchdog.observers.inotify_move_event_grouper import (
    GroupedInotifyEvent,
    InotifyMoveEventGrouper,
    PathedInotifyEvent,
)

RecordSink = Callable[[str], None]

# Close-after-write (in-place writers such as Aura), created and moved-in (atomic writers), deleted. Not
# IN_MODIFY: it fires on every write() of a half-written file.
RECORD_EVENTS = Mask(
    InotifyConstants.IN_CREATE
    | InotifyConstants.IN_MOVED_TO
    | InotifyConstants.IN_CLOSE_WRITE
    | InotifyConstants.IN_DELETE
    | InotifyConstants.IN_DELETE_SELF
)


class UnpairedMoves(InotifyMoveEventGrouper):
    """The move grouper of a watch that never receives IN_MOVED_FROM: there is nothing to pair.

    watchdog's own scans its whole pending queue twice for every IN_MOVED_TO, so each atomic write cost
    more the further the emitter lagged (~17% of the sidecar's CPU at 1,000 writes/s with SSE clients).
    """

    def _group_moved_to_event(self, to_event: PathedInotifyEvent) -> GroupedInotifyEvent:
        return to_event

    def get_queued_moved_from_event(self, cookie: int) -> PathedInotifyEvent | None:
        return None


@dataclass
class RecordWatchGroup(InotifyWatchGroup):
    """watchdog's watch group; events of files named `record_name` go to `sink`, other files' are dropped."""

    record_name: bytes = b""
    sink: RecordSink | None = None
    _move_event_grouper: InotifyMoveEventGrouper = field(default_factory=UnpairedMoves, init=False)

    def on_event(self, event: InotifyEvent) -> None:
        if not event.name or event.is_directory:
            super().on_event(event)  # the watched dir itself, or a job dir: watchdog keeps the watches right
            return
        if event.name != self.record_name or self.sink is None:
            return  # a temp file or a file beside the record
        with self._lock:
            path = self._build_event_source_path(event) if self.is_active else None
        if path is not None:
            self.sink(os.fsdecode(path))


class RecordEmitter(InotifyEmitter):
    """watchdog's inotify emitter with a RecordWatchGroup and the RECORD_EVENTS mask."""

    def __init__(self, *args: object, record_name: str, sink: RecordSink, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._record_name = os.fsencode(record_name)
        self._sink = sink

    def get_event_mask_from_filter(self) -> Mask:
        return RECORD_EVENTS

    def on_thread_start(self) -> None:
        # As watchdog's own, with our watch group.
        self._inotify = RecordWatchGroup(
            self._inotify_fd,
            os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink,
            record_name=self._record_name,
            sink=self._sink,
        )


class RecordObserver(InotifyObserver):
    """An inotify observer whose record events reach `sink` from watchdog's reader thread; the handler
    scheduled on it receives directory events, and the created events watchdog simulates for the files of
    a directory that appeared with them already inside."""

    def __init__(self, record_name: str, sink: RecordSink) -> None:
        super().__init__()
        # watchdog only ever calls its emitter class to build the emitter, so a partial stands in for it.
        emitter = functools.partial(RecordEmitter, record_name=record_name, sink=sink)
        self._emitter_class = cast("type[EventEmitter]", emitter)
