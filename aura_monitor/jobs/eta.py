"""Estimated time remaining from the median velocity of recent progress samples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from statistics import median

from .model import ProgressPoint

WINDOW = 5
MIN_ETA_S = 5.0
MAX_ETA_S = 2 * 3600.0


def velocity(samples: Sequence[ProgressPoint], window: int = WINDOW) -> float | None:
    """Median percent per second over the last `window` samples, or None with too few."""
    recent = list(samples)[-window:]
    speeds = [(b.percent - a.percent) / (b.at - a.at) for a, b in itertools.pairwise(recent) if b.at > a.at]
    return median(speeds) if speeds else None


def eta_seconds(samples: Sequence[ProgressPoint], percent: float) -> float | None:
    """Seconds until 100%, clamped to 5 s - 2 h; None when unknown (no or non-positive velocity)."""
    speed = velocity(samples)
    if speed is None or speed <= 0:
        return None
    return min(MAX_ETA_S, max(MIN_ETA_S, (100.0 - percent) / speed))
