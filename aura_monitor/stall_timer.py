"""The thread that wakes exactly when the earliest stall deadline passes and flags it."""

from __future__ import annotations

import logging
import math
import threading

from .clock import Clock
from .tracker import Tracker

log = logging.getLogger(__name__)

# Deadlines compare strictly (a job is stalled *after* its threshold): wake a hair later.
_EPSILON = 0.001


class StallTimer:
    """Sleeps until tracker.next_deadline(), then ticks; an earlier deadline armed meanwhile wakes it."""

    def __init__(self, tracker: Tracker, clock: Clock) -> None:
        self.tracker = tracker
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sleeping_until = math.inf
        self._thread: threading.Thread | None = None
        tracker.on_deadline(self._armed)

    def _armed(self, deadline: float) -> None:
        if deadline < self._sleeping_until:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aura-stall-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                now = self.clock.now()
                deadline = self.tracker.next_deadline()
                if deadline is not None and deadline < now:
                    self.tracker.tick(now)
                    continue
            except Exception:  # keep flagging stalls even if one tick hits a bug
                log.exception("stall timer tick failed")
                deadline = None
            self._sleeping_until = deadline if deadline is not None else math.inf
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now()) + _EPSILON
            self._wake.wait(timeout)
            self._sleeping_until = math.inf
