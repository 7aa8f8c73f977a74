"""How `aura-monitor demo` judges a job over its whole life: the expected verdict reached soon after the
fault shows, then held; a verdict that is right once and wrong afterwards does not pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..jobs.verdicts import Verdict

REACH_WITHIN_S = 20.0  # the expected verdict must come this soon after the job stalls
HOLD_SHARE = 0.95  # ... and be the verdict in at least this share of the samples after that
HOLD_S = 30.0  # --once watches each reached verdict this long (or until the job ends) before it decides


class Expectation(Enum):
    """What a demo job must show, which decides when its fault counts as shown."""

    COMPLETES = "completes"  # a healthy job: completes without ever stalling
    STALLS = "stalls"  # a fault that stalls the job: judged from its first stall until the stall ends
    # Quiet past the default threshold while the (longer) finalizing one applies: judged from then until the
    # job ends, on explain's verdict (no verdict is served for a job that is not stalled).
    QUIET = "quiet"
    QUIET_NOT_STALLED = "quiet, never stalled"  # ... and it must never stall (slow finalization)


QUIET = (Expectation.QUIET, Expectation.QUIET_NOT_STALLED)


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at a job, as the sidecar serves it at `at` (wall clock)."""

    at: float
    verdict: Verdict | None  # the served verdict (None: none is shown, e.g. the job is not stalled)
    stalled: bool
    stalled_since: float | None
    terminal: bool
    status: str
    quiet_finalizing: bool = False  # finalizing threshold applies, no progress for longer than the default one


@dataclass
class JobJudgement:
    """Every sample of one job from when its fault showed: when the expected verdict came, and how long it held."""

    name: str
    expected: Verdict
    expectation: Expectation
    job_id: str = ""
    onset_at: float | None = None  # the fault showed: first stall (or, finalizing, quiet past the default)
    reached_at: float | None = None
    ended_at: float | None = None  # the fault is over (terminal record, or the stall ended): later samples do not count
    ended_as: str | None = None
    ever_stalled: bool = False
    verdict: Verdict | None = None  # the latest sample's
    held: int = 0  # samples since reached_at showing the expected verdict
    after: int = 0  # samples since reached_at
    others: dict[str, int] = field(default_factory=dict)  # what the other samples since reached_at showed
    before: dict[str, int] = field(default_factory=dict)  # what the samples between onset and reached_at showed
    last_at: float | None = None

    def observe(self, sample: Sample) -> list[str]:
        """Take one sample; return what changed, in words (for the progress lines)."""
        news: list[str] = []
        self.last_at = sample.at
        if sample.stalled and not self.ever_stalled:
            self.ever_stalled = True
            news.append(f"stalled (verdict {sample.verdict or '-'})")
        elif sample.verdict != self.verdict and sample.verdict is not None and sample.stalled:
            news.append(f"verdict {sample.verdict}")
        self.verdict = sample.verdict
        if self.ended_at is not None:
            return news
        if self.onset_at is None:
            if self.expectation is Expectation.STALLS and sample.stalled:
                self.onset_at = sample.stalled_since if sample.stalled_since is not None else sample.at
            elif self.expectation in QUIET and (sample.quiet_finalizing or sample.stalled):
                self.onset_at = sample.at
        ended = sample.status if sample.terminal else None
        quiet = sample.stalled or (self.expectation in QUIET and sample.quiet_finalizing)
        if self.onset_at is not None and not quiet and not ended:
            ended = "recovered (progress resumed)"  # the stall (or quiet spell) is over, its verdict with it
        if ended and self.expectation is not Expectation.COMPLETES:
            self.ended_at, self.ended_as = sample.at, ended
            news.append(f"ended {ended}")
            return news
        if self.reached_at is None and sample.verdict == self.expected and self._counts(sample):
            self.reached_at = sample.at
            news.append(f"reached {self.expected}" + (f" {self.latency:.0f} s after stalling" if self.latency else ""))
        if self.reached_at is None and self.onset_at is not None:
            key = str(sample.verdict or "no verdict")
            self.before[key] = self.before.get(key, 0) + 1
        if self.reached_at is not None:
            self.after += 1
            if sample.verdict == self.expected:
                self.held += 1
            else:
                key = str(sample.verdict or "no verdict")
                self.others[key] = self.others.get(key, 0) + 1
        if sample.terminal:
            self.ended_at, self.ended_as = sample.at, sample.status
        return news

    def _counts(self, sample: Sample) -> bool:
        if self.expectation is Expectation.COMPLETES:
            return sample.terminal
        return self.onset_at is not None

    @property
    def latency(self) -> float | None:
        """Seconds from the fault showing to the expected verdict (0 when the verdict came first)."""
        if self.reached_at is None or self.onset_at is None:
            return None
        return max(0.0, self.reached_at - self.onset_at)

    @property
    def share(self) -> float | None:
        return self.held / self.after if self.after else None

    def failure(self, now: float) -> str | None:
        """Why this job fails as far as seen by `now`, or None while it passes (or may still)."""
        if self.expectation in (Expectation.COMPLETES, Expectation.QUIET_NOT_STALLED) and self.ever_stalled:
            return "stalled, but it should not have"
        if self.reached_at is None:
            showed = f"; showed {_counts(self.before)}" if self.before else ""
            if self.ended_at is not None:
                return f"the job {self.ended_as} before showing {self.expected}{showed}"
            if self.onset_at is not None and now - self.onset_at > REACH_WITHIN_S:
                return f"{self.expected} not reached within {REACH_WITHIN_S:g} s of the fault showing{showed}"
            return None
        if self.latency is not None and self.latency > REACH_WITHIN_S:
            return f"reached {self.latency:.0f} s after stalling (limit {REACH_WITHIN_S:g} s)"
        share = self.share
        if share is not None and share < HOLD_SHARE:
            needs = f"needs {HOLD_SHARE:.0%}"
            return f"held in {share:.0%} of {self.after} samples ({needs}); also showed {_counts(self.others)}"
        return None

    def decided(self, now: float, hold_s: float = HOLD_S) -> bool:
        """Whether --once has seen enough of this job: it failed for good, or held its verdict long enough."""
        if self.reached_at is None:
            return self.failure(now) is not None
        if self.failure(now) is not None and self.latency is not None and self.latency > REACH_WITHIN_S:
            return True
        if self.expectation in (Expectation.COMPLETES, Expectation.QUIET_NOT_STALLED) and self.ever_stalled:
            return True
        return self.ended_at is not None or now - self.reached_at >= hold_s

    def passed(self, now: float) -> bool:
        return self.reached_at is not None and self.failure(now) is None

    def result(self, now: float, finished: bool) -> str:
        """The verdict table's last column: ok, MISSED with the reason, or still judging."""
        failure = self.failure(now)
        if failure is None and self.reached_at is not None:
            return "ok"
        if failure is None and not finished:
            return "…"
        if failure is None and self.onset_at is None:
            return "MISSED: never showed its fault"
        if failure is None:
            return f"MISSED: {self.expected} not reached" + (f"; showed {_counts(self.before)}" if self.before else "")
        return f"MISSED: {failure}"


def _counts(seen: dict[str, int]) -> str:
    """`process_hung x12, no_progress x2`: most shown first."""
    return ", ".join(f"{code} x{n}" for code, n in sorted(seen.items(), key=lambda kv: -kv[1]))
