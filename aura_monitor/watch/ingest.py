"""The ingest thread: reads job files named by the watcher, coalescing bursts and retrying half-writes."""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..clock import Clock
from ..exceptions import InvalidJobId, RecordError
from ..jobs.model import validate_job_id
from ..jobs.tracker import Tracker
from ..records import parse_record, read_file
from ..records.layout import RECORD_NAME

log = logging.getLogger(__name__)

# In-place writers (Aura) truncate then rewrite: a read can land in between. Retry soon, then back off.
RETRY_DELAYS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@dataclass(slots=True)
class IngestStats:
    """Counters the metrics collector reads (plain ints: written by one thread, read racily is fine)."""

    reads: int = 0
    parse_failures: int = 0
    removed: int = 0
    last_lag_s: float = 0.0


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def job_id_for(root: Path, path: str) -> str | None:
    """The job id of `<root>/<id>/job.json`, or None for any other path."""
    head, name = os.path.split(path)
    if name != RECORD_NAME:
        return None
    parent, job_id = os.path.split(head)
    if parent != str(root) and Path(parent) != root:  # string first: Path() costs more than the read
        return None
    try:
        return validate_job_id(job_id)
    except InvalidJobId:
        return None


class Ingestor:
    """Reads and parses job files on its own thread and applies them to the tracker."""

    def __init__(
        self, root: Path, tracker: Tracker, clock: Clock, lag_observer: Callable[[float], None] | None = None
    ) -> None:
        self.root = root
        self.tracker = tracker
        self.clock = clock
        self.stats = IngestStats()
        self._lag_observer = lag_observer
        self._ready: dict[str, bool] = {}  # path -> forced (ordered set)
        self._delayed: list[tuple[float, str]] = []
        self._attempts: dict[str, int] = {}
        self._signatures: dict[str, tuple[int, int, int]] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._unstarted = 0  # paths of the batch in hand not yet started

    # -- producers (any thread) ----------------------------------------------------------------
    def touch(self, path: str, *, force: bool = True) -> None:
        """Schedule a read of `path`; `force=False` skips it when size, mtime and inode are unchanged."""
        with self._cond:
            self._ready[path] = self._ready.get(path, False) or force
            self._idle.clear()
            self._cond.notify()

    def touch_many(self, paths: list[str], *, force: bool = True) -> None:
        """touch() for many paths with a single wake-up of the ingest thread."""
        if not paths:
            return
        with self._cond:
            for path in paths:
                self._ready[path] = self._ready.get(path, False) or force
            self._idle.clear()
            self._cond.notify()

    def unchanged(self, path: str, st: os.stat_result) -> bool:
        """Whether `st` is what the last good read of `path` saw (read racily from another thread: a stale
        answer only costs one extra read)."""
        return self._signatures.get(path) == _signature(st)

    def forget(self, path: str) -> None:
        self._signatures.pop(path, None)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="aura-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread:
            self._thread.join(timeout=5)

    def backlog(self) -> int:
        """Paths queued and not yet started (read racily from other threads: an estimate, exact when 0 is
        read on the ingest thread itself, which is where the event broker asks while it publishes)."""
        return len(self._ready) + self._unstarted

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued for reading (retries may still be pending)."""
        return self._idle.wait(timeout)

    def catch_up(self, timeout: float) -> bool:
        """Re-read every known job file that changed (one stat each) and wait until that is done.

        Called by the stall timer after a pause: the watcher's own events for those writes may still be
        queued in the kernel, and judging before they are read would call every healthy job stalled.
        """
        paths = [state.path for state in self.tracker.jobs()]
        self.touch_many(paths, force=False)
        return self.wait_idle(timeout)

    # -- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._ready and not self._due():
                    self._idle.set()
                    timeout = self._delayed[0][0] - time.monotonic() if self._delayed else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, path = heapq.heappop(self._delayed)
                    self._ready.setdefault(path, True)
                batch, self._ready = self._ready, {}
                self._unstarted = len(batch)
            for path, forced in batch.items():
                self._unstarted -= 1
                try:
                    self.ingest(path, forced=forced)
                except Exception:  # a bug here must not kill the thread that feeds every job
                    log.exception("unexpected error ingesting %s", path)

    def _due(self) -> bool:
        return bool(self._delayed) and self._delayed[0][0] <= time.monotonic()

    def ingest(self, path: str, *, forced: bool = True) -> None:
        """Read one file now and apply it (public for single-step tests)."""
        job_id = job_id_for(self.root, path)
        if job_id is None:
            return
        if not forced:  # a rescan: one stat decides whether the file needs reading at all
            try:
                if self._signatures.get(path) == _signature(os.stat(path)):
                    return
            except FileNotFoundError:
                self._gone(job_id, path)
                return
            except OSError:
                pass  # reading it says what is wrong
        self.stats.reads += 1
        try:
            data, st = read_file(path)
            record = parse_record(data)
        except FileNotFoundError:
            self._gone(job_id, path)
            return
        except OSError as exc:
            self._failed(job_id, path, f"cannot read {path}: {exc.strerror or exc}")
            return
        except RecordError as exc:
            self._failed(job_id, path, str(exc))
            return
        if record.id != job_id:
            note = f"record id {record.id!r} differs from its directory name {job_id!r}"
            record = replace(record, id=job_id, inconsistencies=(*record.inconsistencies, note))
        self._attempts.pop(path, None)
        self._signatures[path] = _signature(st)
        now = self.clock.now()
        self.tracker.apply(path, record, now, st.st_mtime)
        lag = max(0.0, time.time() - st.st_mtime)
        self.stats.last_lag_s = lag
        if self._lag_observer:
            self._lag_observer(lag)

    def _gone(self, job_id: str, path: str) -> None:
        self._signatures.pop(path, None)
        self._attempts.pop(path, None)
        if self.tracker.get(job_id) is not None:
            self.stats.removed += 1
            self.tracker.remove(job_id, self.clock.now())

    def _failed(self, job_id: str, path: str, error: str) -> None:
        self.stats.parse_failures += 1
        self._signatures.pop(path, None)
        self.tracker.record_failure(job_id, path, error, self.clock.now())
        attempt = self._attempts.get(path, 0)
        if attempt < len(RETRY_DELAYS):
            self._attempts[path] = attempt + 1
            with self._cond:
                heapq.heappush(self._delayed, (time.monotonic() + RETRY_DELAYS[attempt], path))
                self._cond.notify()
