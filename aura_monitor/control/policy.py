"""The retry policy: a pure function of a job's accepted retries, the time and the settings.

The first retry is immediate; each later one waits `backoff x 2^(retries so far - 1)` seconds after the
previous one, capped at `backoff_cap`; at most `max_retries` count at once, and an accepted retry stops
counting `window` seconds after it was accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a job may be retried."""

    max_retries: int = 3
    backoff: float = 5.0
    backoff_cap: float = 300.0
    window: float = 86_400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_retries=settings.retry_max,
            backoff=settings.retry_backoff,
            backoff_cap=settings.retry_backoff_cap,
            window=settings.retry_window,
        )


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether a retry may go ahead now; if not, how long until one may, and why."""

    allowed: bool
    retry_after: float
    retries_remaining: int
    reason: str


def wait_before(retries_so_far: int, policy: RetryPolicy) -> float:
    """Seconds between the previous retry and the next one: 0 for the first."""
    if retries_so_far <= 0:
        return 0.0
    return min(policy.backoff_cap, policy.backoff * 2.0 ** (retries_so_far - 1))


def decide_retry(history: Sequence[float], now: float, policy: RetryPolicy) -> RetryDecision:
    """May a job whose retries were accepted at `history` (epoch seconds) be retried at `now`?"""
    counted = sorted(at for at in history if now - at < policy.window)
    used = len(counted)
    remaining = policy.max_retries - used
    if remaining <= 0:
        if policy.max_retries <= 0 or not counted:
            return RetryDecision(False, policy.window, 0, "retries are disabled (retry_max is 0)")
        frees_at = counted[used - policy.max_retries] + policy.window
        return RetryDecision(
            False,
            max(0.0, frees_at - now),
            0,
            f"all {policy.max_retries} retries were used; the oldest stops counting in "
            f"{max(0.0, frees_at - now):.0f} s",
        )
    ready_at = counted[-1] + wait_before(used, policy) if counted else now
    if now < ready_at:
        return RetryDecision(
            False,
            ready_at - now,
            remaining,
            f"retry {used + 1} must wait {wait_before(used, policy):g} s after the previous one; "
            f"{ready_at - now:.3g} s to go",
        )
    return RetryDecision(True, 0.0, remaining - 1, "accepted")
