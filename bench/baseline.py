"""The baseline a user would otherwise have: a watcher that polls every job file every 500 ms (as Aura's
frontend polls its API), feeding the same parsers and the same tracker, with a stall check per poll."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from aura_monitor.clock import SystemClock
from aura_monitor.exceptions import RecordError
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.records import read_record

POLL_INTERVAL_S = 0.5


class PollingWatcher:
    def __init__(self, jobs_dir: Path, thresholds: Thresholds, interval: float = POLL_INTERVAL_S) -> None:
        self.jobs_dir = jobs_dir
        self.interval = interval
        self.tracker = Tracker(thresholds)
        self.clock = SystemClock()
        self.polls = 0
        self._seen: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baseline-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll_once(self) -> None:
        now = self.clock.now()
        for entry in os.scandir(self.jobs_dir):
            path = os.path.join(entry.path, "job.json")
            try:
                st = os.stat(path)
            except OSError:
                continue
            signature = (st.st_mtime_ns, st.st_size)
            if self._seen.get(path) == signature:
                continue
            try:
                record = read_record(path)
            except RecordError:
                continue
            self._seen[path] = signature
            self.tracker.apply(path, record, now, st.st_mtime)
        # A poller has no deadline heap: it can only notice a stall when it next looks.
        self.tracker.tick(self.clock.now())
        self.polls += 1

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.poll_once()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
