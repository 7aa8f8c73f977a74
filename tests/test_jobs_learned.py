"""The learned-threshold rule (jobs/learned.py) and how Thresholds and the Tracker apply it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aura_monitor.events.translate import events_for
from aura_monitor.jobs.learned import LearnSettings, StageSample, learn, quantile
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import ThresholdKind, Thresholds, ThresholdSource
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import TransitionKind

CONFIGURED = Thresholds()


def _runs(stage: str, gaps: list[float], media: list[float | None] | None = None) -> list[StageSample]:
    media = media or [None] * len(gaps)
    return [StageSample(stage, gap, m) for gap, m in zip(gaps, media, strict=True)]


def test_a_stage_with_enough_healthy_runs_is_learned_from_its_p99_gap_times_four() -> None:
    table = learn(_runs("tts", [2.0] * 30 + [2.5] * 18), CONFIGURED.configured_for_stage)
    tts = table.get("tts")
    assert tts is not None and tts.per_media_second is None
    assert abs(tts.seconds - 10.0) < 1e-9  # p99 of the maxima is 2.5 s, x4
    assert tts.basis == "p99 gap 2.5 s over 48 runs, x4"


def test_too_few_healthy_runs_leave_the_stage_on_its_configured_threshold() -> None:
    table = learn(_runs("render", [1.0] * 19), CONFIGURED.configured_for_stage)
    assert table.get("render") is None
    assert "19 healthy runs, 20 needed" in table.skipped["render"]
    picked = Thresholds(learned=table).pick(JobStatus.RUNNING, "Render", 85.0)
    assert picked is not None and picked.source is ThresholdSource.CONFIGURED and picked.seconds == 45.0


def test_a_stage_whose_gaps_grow_with_the_media_is_learned_per_media_second() -> None:
    media = [float(m) for m in range(10, 130, 5)]  # 24 runs from 10 s to 125 s of media
    table = learn(_runs("render", [0.1 * m for m in media], media), CONFIGURED.configured_for_stage)
    render = table.get("render")
    assert render is not None and render.per_media_second is not None
    assert abs(render.per_media_second - 0.4) < 1e-9  # 0.1 s of silence per media second, x4
    short, _ = render.for_media(30.0)
    long, basis = render.for_media(120.0)
    assert (short, long) == (12.0, 48.0)
    assert "per media second" in basis and "for 120 s of media" in basis
    assert render.for_media(None)[0] == render.seconds  # unknown length: the unscaled threshold


def test_gaps_that_do_not_follow_the_media_length_are_not_scaled() -> None:
    media = [float(m) for m in range(10, 130, 5)]
    gaps = [1.0 + (i % 3) * 0.1 for i in range(len(media))]
    table = learn(_runs("images", gaps, media), CONFIGURED.configured_for_stage)
    images = table.get("images")
    assert images is not None and images.per_media_second is None


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), min_size=1, max_size=60),
    media=st.floats(min_value=0.1, max_value=1e5),
    floor=st.floats(min_value=0.5, max_value=100.0),
    ceiling_factor=st.floats(min_value=0.1, max_value=10.0),
    min_runs=st.integers(min_value=1, max_value=40),
)
def test_a_learned_threshold_always_lies_between_the_floor_and_the_ceiling(
    gaps: list[float], media: float, floor: float, ceiling_factor: float, min_runs: int
) -> None:
    knobs = LearnSettings(min_runs=min_runs, floor=floor, ceiling_factor=ceiling_factor)
    media_list: list[float | None] = [media * (1 + i) for i in range(len(gaps))]
    table = learn(_runs("tts", gaps, media_list), CONFIGURED.configured_for_stage, knobs)
    learned = table.get("tts")
    if len(gaps) < min_runs:
        assert learned is None
        return
    assert learned is not None
    ceiling = max(floor, ceiling_factor * 45.0)
    for length in (None, 0.5, media, 1e6):
        seconds, _ = learned.for_media(length)
        assert floor <= seconds <= ceiling


def test_the_quantile_interpolates_like_numpy() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([5.0], 0.99) == 5.0


def test_queued_and_a_render_past_the_finalizing_percent_keep_their_configured_rules() -> None:
    samples = _runs("render", [1.0] * 20) + _runs("finalize", [3.0] * 20)
    learned = Thresholds(learned=learn(samples, CONFIGURED.configured_for_stage))
    queued = learned.pick(JobStatus.QUEUED, "Queued", 0.0)
    assert queued is not None and (queued.seconds, queued.source) == (600.0, ThresholdSource.CONFIGURED)
    late_render = learned.pick(JobStatus.RUNNING, "Render", 92.0)
    assert late_render is not None and late_render.kind is ThresholdKind.FINALIZING
    assert late_render.source is ThresholdSource.CONFIGURED and late_render.seconds == 180.0
    finalize = learned.pick(JobStatus.RUNNING, "Finalize", 97.0)
    assert finalize is not None and finalize.source is ThresholdSource.LEARNED and finalize.seconds == 12.0
    early_render = learned.pick(JobStatus.RUNNING, "Render", 85.0)
    assert early_render is not None and early_render.source is ThresholdSource.LEARNED
    assert early_render.seconds == 10.0 and "raised to the 10 s floor" in early_render.basis


def _record(percent: float, stage: str = "TTS") -> JobRecord:
    return JobRecord(
        id="j1",
        format=RecordFormat.NATIVE,
        status=JobStatus.RUNNING,
        stage=stage,
        percent=percent,
        raw_status="running",
    )


def test_the_tracker_flags_a_stall_at_the_learned_threshold_and_says_so() -> None:
    learned = Thresholds(learned=learn(_runs("tts", [2.0] * 25), CONFIGURED.configured_for_stage))
    tracker = Tracker(Thresholds())
    tracker.apply("/j1/job.json", _record(30.0), at=1000.0)
    tracker.apply("/j1/job.json", _record(31.0), at=1001.0)
    state = tracker.get("j1")
    assert state is not None and state.threshold == 45.0 and state.threshold_source is ThresholdSource.CONFIGURED
    tracker.set_thresholds(learned, at=1002.0)  # a refresh re-arms the running job at once
    assert state.threshold == 10.0 and state.threshold_source is ThresholdSource.LEARNED
    assert tracker.tick(1010.5) == []
    flagged = tracker.tick(1011.5)
    assert [t.kind for t in flagged] == [TransitionKind.STALLED]
    assert "learned: p99 gap 2 s over 25 runs, x4, raised to the 10 s floor" in flagged[0].reason
    (name, _, data), *_ = events_for(flagged, tracker.get)
    assert name == "job-stalled" and data["thresholdSource"] == "learned" and data["thresholdSeconds"] == 10.0
    assert data["thresholdBasis"] == "p99 gap 2 s over 25 runs, x4, raised to the 10 s floor"


def test_stages_outside_the_stage_table_are_never_learned_together() -> None:
    table = learn(_runs("other", [1.0] * 50), CONFIGURED.configured_for_stage)
    assert table.get("other") is None and "not learned" in table.skipped["other"]
