"""Injected time: the wall clock for what is shown (job records carry wall-clock stamps), and a monotonic
clock for what is timed (stall deadlines), so stepping the system clock neither hides nor invents a stall."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand, so nothing has to sleep: advance() moves both clocks, set() and step()
    only the wall clock (as an operator or NTP stepping it would)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 1_000.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            self._mono += seconds
            return self._now

    def step(self, seconds: float) -> float:
        """Move the wall clock only (negative: back)."""
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when
