from __future__ import annotations

from aura_monitor.jobs.eta import eta_seconds, velocity
from aura_monitor.jobs.model import ProgressPoint


def points(*pairs: tuple[float, float]) -> list[ProgressPoint]:
    return [ProgressPoint(at, pct, "Render") for at, pct in pairs]


def test_eta_uses_the_median_velocity_of_the_last_five_samples() -> None:
    samples = points((0, 0), (1, 50), (2, 51), (3, 52), (4, 53), (5, 54), (6, 55))
    assert velocity(samples) == 1.0
    assert eta_seconds(samples, 55) == 45.0


def test_eta_is_clamped_between_five_seconds_and_two_hours() -> None:
    assert eta_seconds(points((0, 0), (1, 50), (2, 99)), 99) == 5.0
    assert eta_seconds(points((0, 0), (1000, 0.1), (2000, 0.2)), 0.2) == 7200.0


def test_eta_is_unknown_without_forward_progress() -> None:
    assert eta_seconds(points((0, 10)), 10) is None
    assert eta_seconds(points((0, 10), (5, 10), (9, 10)), 10) is None
