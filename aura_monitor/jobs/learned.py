"""Learned stall thresholds: per stage, from the gaps between progress updates of healthy runs (DESIGN 2.7).

Pure: the history hands in one `StageSample` per healthy stage run; no threads, files or clocks here.

The rule, per stage key with at least `min_runs` healthy runs:
- each run contributes its *largest* gap between progress updates (the quietest moment a healthy run had);
- the threshold is the p99 of those maxima times `factor` (4) (a stall must be clearly quieter than the
  quietest healthy moment seen, not merely at it);
- a stage whose largest gaps grow with the media (Pearson correlation of max gap with expected media
  seconds >= SCALE_MIN_CORRELATION over runs that know their media) is learned per media second instead,
  and a job's threshold is that rate times its own expected media seconds (ffmpeg's silent faststart
  pass and a TTS provider's per-chunk synthesis grow with length; a per-image step does not);
- always bounded by `floor` and `ceiling` (default 4 x the stage's configured threshold).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

QUANTILE = 0.99
# x4: a steady slowdown up to 4x (a contended node, a slow provider) stays healthy; chosen with
# bench/thresholds.py (x3 flagged a 3x-slow healthy run, x5 missed the 3x-faster-detection target for TTS).
FACTOR = 4.0
SCALE_MIN_CORRELATION = 0.8
# A correlation from a handful of runs, or from media lengths that barely vary, means nothing.
SCALE_MIN_RUNS = 10
SCALE_MIN_SPREAD = 1.5  # longest / shortest expected media among the runs
# "other" lumps every stage name the stage table does not know: one rhythm learned over unrelated stages
# would be wrong for each of them. The queued rule is never learned.
NOT_LEARNED = {"other": "stage names outside the stage table are not learned", "unknown": "no stage name",
               "queued": "the queued threshold is never learned"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageSample:
    """One healthy run of one stage, as the history recorded it."""

    stage: str  # canonical stage key (jobs.stages.stage_key)
    max_gap_s: float
    expected_media_s: float | None = None


@dataclass(frozen=True, slots=True)
class LearnSettings:
    """The --learn-* knobs; `ceiling_factor` times the configured threshold is the ceiling."""

    min_runs: int = 20
    floor: float = 10.0
    ceiling_factor: float = 4.0
    factor: float = FACTOR
    quantile: float = QUANTILE


@dataclass(frozen=True, slots=True)
class LearnedStage:
    """A stage's learned threshold: fixed seconds, or seconds per media second when it scales."""

    stage: str
    runs: int
    seconds: float  # for a job whose media length is unknown (or for a stage that does not scale)
    per_media_second: float | None
    floor: float
    ceiling: float
    basis: str

    def for_media(self, media_s: float | None) -> tuple[float, str]:
        """The threshold for one job and the sentence that says where it came from."""
        if self.per_media_second is None or media_s is None or media_s <= 0:
            return self.seconds, self.basis
        raw = self.per_media_second * media_s
        seconds = _bounded(raw, self.floor, self.ceiling)
        return seconds, f"{self.basis}, for {media_s:g} s of media{_clamp_note(raw, seconds)}"


@dataclass(frozen=True, slots=True)
class LearnedTable:
    """Every stage learned so far, by stage key; `skipped` says why the other stages were not."""

    stages: Mapping[str, LearnedStage]
    skipped: Mapping[str, str]

    def get(self, key: str) -> LearnedStage | None:
        return self.stages.get(key)


EMPTY = LearnedTable({}, {})


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty list (numpy's default method)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def correlation(xs: list[float], ys: list[float]) -> float:
    """Pearson correlation; 0 when either side does not vary."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def learn(
    samples: Iterable[StageSample], configured: Callable[[str], float], settings: LearnSettings = LearnSettings()
) -> LearnedTable:
    """The learned table; `configured(stage_key)` is the threshold that applies to a stage without learning."""
    by_stage: dict[str, list[StageSample]] = {}
    for sample in samples:
        if sample.max_gap_s is not None and math.isfinite(sample.max_gap_s) and sample.max_gap_s >= 0:
            by_stage.setdefault(sample.stage, []).append(sample)
    stages: dict[str, LearnedStage] = {}
    skipped: dict[str, str] = {}
    for stage, runs in sorted(by_stage.items()):
        if stage in NOT_LEARNED:
            skipped[stage] = f"{NOT_LEARNED[stage]}: configured threshold"
            continue
        if len(runs) < settings.min_runs:
            skipped[stage] = (
                f"{len(runs)} healthy runs, {settings.min_runs} needed (--learn-min-runs): configured threshold"
            )
            continue
        stages[stage] = _learn_stage(stage, runs, configured(stage), settings)
    return LearnedTable(stages, skipped)


def _learn_stage(stage: str, runs: list[StageSample], configured: float, s: LearnSettings) -> LearnedStage:
    ceiling = max(s.floor, s.ceiling_factor * configured)
    gaps = [r.max_gap_s for r in runs]
    label = f"p{round(s.quantile * 100):d}"
    base_raw = quantile(gaps, s.quantile) * s.factor
    base = _bounded(base_raw, s.floor, ceiling)
    basis = f"{label} gap {quantile(gaps, s.quantile):.3g} s over {len(runs)} runs, x{s.factor:g}"
    with_media = [r for r in runs if r.expected_media_s is not None and r.expected_media_s > 0]
    per_media: float | None = None
    if len(with_media) >= SCALE_MIN_RUNS:
        media = [r.expected_media_s for r in with_media if r.expected_media_s is not None]
        spread = max(media) / min(media)
        r = correlation(media, [x.max_gap_s for x in with_media])
        if spread >= SCALE_MIN_SPREAD and r >= SCALE_MIN_CORRELATION:
            rates = [x.max_gap_s / m for x, m in zip(with_media, media, strict=True)]
            rate = quantile(rates, s.quantile)
            per_media = rate * s.factor
            basis = (
                f"{label} gap {rate:.3g} s per media second over {len(with_media)} runs"
                f" (gap grows with media, r={r:.2f}), x{s.factor:g}"
            )
    return LearnedStage(
        stage, len(runs), base, per_media, s.floor, ceiling, basis + _clamp_note(base_raw, base, per_media is None)
    )


def _bounded(value: float, floor: float, ceiling: float) -> float:
    return min(ceiling, max(floor, value))


def _clamp_note(raw: float, bounded: float, applies: bool = True) -> str:
    if not applies or raw == bounded:
        return ""
    return f", raised to the {bounded:g} s floor" if raw < bounded else f", capped at the {bounded:g} s ceiling"
