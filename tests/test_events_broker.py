"""The event broker without a server: which events transitions become, numbering, replay, slow subscribers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from aura_monitor.clock import FakeClock
from aura_monitor.events import EventBroker, EventId, EventName, Opening, StreamKind, Subscriber
from aura_monitor.events.model import Event, encode
from aura_monitor.events.stream import EventStreamResponse
from aura_monitor.events.subscriber import Ending
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker

N = EventName


def record(job_id: str = "job", **fields: Any) -> JobRecord:
    base: dict[str, Any] = {
        "id": job_id,
        "format": RecordFormat.NATIVE,
        "status": JobStatus.RUNNING,
        "stage": "TTS",
        "percent": 30.0,
        "raw_status": "running",
    }
    base.update(fields)
    return JobRecord(**base)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class World:
    def __init__(self, clock: FakeClock, *, starting: bool = False, **limits: int) -> None:
        self.clock = clock
        self.tracker = Tracker(Thresholds())
        self.scanning = starting  # the initial scan under way (the sidecar asks its watcher and ingestor)
        scanned = (lambda: not self.scanning) if starting else None
        self.broker = EventBroker(self.tracker, clock, boot="b00t", scanned=scanned, **limits)
        self.tracker.subscribe(self.broker.publish)

    def write(self, job_id: str = "job", **fields: Any) -> None:
        self.clock.advance(1)
        fields.setdefault("last_progress_at", self.clock.now())
        self.tracker.apply(f"/jobs/{job_id}/job.json", record(job_id, **fields), self.clock.now())

    def open(self, loop: asyncio.AbstractEventLoop, job_id: str | None, last: str | None = None) -> Opening:
        opening = self.broker.open(job_id, last, loop)
        self.broker.snapshot(opening)
        return opening

    def names(self, opening: Opening) -> list[str]:
        return [event.name.value for event in opening.replay]


def test_event_ids_name_the_boot_and_the_position_and_parse_back() -> None:
    assert str(EventId("b00t", 12)) == "b00t-12"
    assert EventId.parse("b00t-12") == EventId("b00t", 12)
    assert EventId.parse("1732380000000-3-7") == EventId("1732380000000-3", 7)
    for bad in (None, "", "12", "b00t-", "-12", "b00t-x", "b00t-" + "9" * 70):
        assert EventId.parse(bad) is None


def test_a_frame_has_an_id_an_event_name_and_one_line_of_json() -> None:
    frame = encode("step-progress", "b00t-3", {"message": "two\nlines"}, retry_ms=2000)
    assert frame == b'retry: 2000\nid: b00t-3\nevent: step-progress\ndata: {"message":"two\\nlines"}\n\n'


def test_a_completing_write_streams_status_stage_progress_and_then_one_terminal_event(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(status=JobStatus.QUEUED, stage="Queued", percent=0, raw_status="queued")
    start = world.open(loop, "job")
    world.write(stage="Script", percent=5)
    world.write(stage="TTS", percent=30, message="voice 1 of 3")
    world.write(status=JobStatus.COMPLETED, stage="Complete", percent=100, output_path="/v/job.mp4")
    replay = world.open(loop, "job", start.first_id)
    assert world.names(replay) == [
        "job-status",
        "step-status",
        "step-progress",
        "step-status",
        "step-progress",
        "job-status",
        "step-status",
        "step-progress",
        "job-completed",
    ]
    ids = [event.n for event in replay.replay]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = replay.replay[4].data
    assert progress["percent"] == 30 and progress["previousPercent"] == 5 and progress["message"] == "voice 1 of 3"
    done = replay.replay[-1].data
    assert done["outputPath"] == "/v/job.mp4" and done["status"] == "completed"
    first = json.loads(replay.replay[0].frame.decode().split("data: ", 1)[1])
    assert first["job"]["status"] == "running" and "job" not in replay.replay[0].data  # kept lean in memory


def test_a_failed_job_ends_with_errors_that_carry_code_message_and_remediation(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(stage="Rendering", percent=84)
    world.write(
        status=JobStatus.FAILED,
        stage="Rendering",
        percent=84,
        error_code="E304-FFMPEG_RUNTIME",
        error_message="FFmpeg exited with code 1",
        suggested_actions=("Check the ffmpeg log",),
    )
    world.write("other", stage="Render", percent=10)
    world.write("other", status=JobStatus.FAILED)
    failed = [e for e in world.open(loop, None, "b00t-0").replay if e.name is N.JOB_FAILED]
    assert failed[0].data["errors"] == [
        {
            "code": "E304-FFMPEG_RUNTIME",
            "message": "FFmpeg exited with code 1",
            "stage": "Rendering",
            "remediation": ["Check the ffmpeg log"],
            # Aura's JobStepError spelling, for its clients (docs/aura.md)
            "Code": "E304-FFMPEG_RUNTIME",
            "Message": "FFmpeg exited with code 1",
            "Remediation": "Check the ffmpeg log",
        }
    ]
    generic = failed[1].data["errors"][0]
    assert generic["code"] == "unspecified" and "aura-monitor explain other" in generic["remediation"][0]


def test_a_stall_and_its_refined_verdict_are_job_stalled_events_and_progress_recovers_it(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(percent=30)
    start = world.open(loop, "job")
    clock.advance(46)
    world.tracker.tick(clock.now())
    world.tracker.set_verdict("job", "upstream_errors", "HTTP 429 from the TTS provider", clock.now())
    world.write(percent=31)
    replay = world.open(loop, "job", start.first_id)
    # The warning is Aura's spelling of the stall, for its clients (docs/aura.md).
    assert world.names(replay) == ["job-stalled", "warning", "job-stalled", "step-progress", "job-recovered"]
    first, refined = replay.replay[0].data, replay.replay[2].data
    assert replay.replay[1].data["stallDurationSeconds"] >= 46 and replay.replay[1].data["step"] == "TTS"
    assert (first["verdict"], first["refined"]) == ("no_progress", False)
    assert first["thresholdSeconds"] == 45 and first["secondsSinceProgress"] >= 46
    assert (refined["verdict"], refined["previousVerdict"], refined["refined"]) == (
        "upstream_errors",
        "no_progress",
        True,
    )
    assert replay.replay[4].data["previousVerdict"] == "upstream_errors"


def test_inconsistent_and_removed_records_become_warnings(clock: FakeClock, loop: asyncio.AbstractEventLoop) -> None:
    world = World(clock)
    world.write(status=JobStatus.COMPLETED, percent=80, inconsistencies=("status=completed but percent=80",))
    world.tracker.remove("job", clock.now())
    warnings = [e.data for e in world.open(loop, None, "b00t-0").replay if e.name is N.WARNING]
    assert [(w["code"], w["severity"]) for w in warnings] == [
        ("status_inconsistent", "warning"),
        ("job_removed", "warning"),
    ]


def test_replay_after_an_id_gives_exactly_the_later_events_of_that_job(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(percent=10)
    seen = world.open(loop, "job")
    world.write("noise", percent=1)
    world.write(percent=20)
    world.write(percent=25)
    replay = world.open(loop, "job", seen.first_id)
    assert not replay.resync and replay.resumed_from == seen.position
    assert [e.data["percent"] for e in replay.replay] == [20, 25]
    assert replay.first_id == seen.first_id  # `connected` repeats the client's id: ids never go back


@pytest.mark.parametrize("last", ["f00d-1", "b00t-999", "garbage", "b00t-²"])
def test_an_id_from_another_boot_or_beyond_the_log_or_unparseable_means_resync(
    clock: FakeClock, loop: asyncio.AbstractEventLoop, last: str
) -> None:
    world = World(clock)
    world.write(percent=10)
    opening = world.open(loop, "job", last)
    assert opening.resync and opening.replay == []
    assert opening.snapshot["percent"] == 10 and opening.first_id == f"b00t-{opening.position}"


def test_once_the_shared_log_moved_on_a_job_replays_from_its_own_log_with_progress_coalesced(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock, replay_events=3, job_replay_events=10)
    world.write(stage="Script", percent=10)
    seen = world.open(loop, "job")
    world.write(stage="TTS", percent=20)
    world.write(stage="TTS", percent=30)
    for i in range(5):
        world.write(f"noise{i}", percent=1)
    replay = world.open(loop, "job", seen.first_id)
    assert not replay.resync
    assert [(e.name.value, e.data["percent"]) for e in replay.replay] == [("step-status", 20), ("step-progress", 30)]


def test_when_even_the_job_log_dropped_what_the_client_missed_it_resyncs(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock, replay_events=2, job_replay_events=2)
    world.write(stage="A", percent=10)
    seen = world.open(loop, "job")
    for stage in "BCDE":
        world.write(stage=stage, percent=10)
    replay = world.open(loop, "job", seen.first_id)
    assert replay.resync and replay.replay == [] and replay.snapshot["stage"] == "E"


def test_a_client_back_after_its_job_ended_gets_the_terminal_event_and_one_that_had_it_is_finished(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(percent=50)
    seen = world.open(loop, "job")
    world.write(status=JobStatus.CANCELLED, error_message="cancelled by the user")
    back = world.open(loop, "job", seen.first_id)
    assert back.replay[-1].name is N.JOB_CANCELLED and not back.finished
    assert back.replay[-1].data["message"] == "cancelled by the user"
    again = world.open(loop, "job", f"b00t-{back.replay[-1].n}")
    assert again.finished and again.subscriber is None
    fresh = world.open(loop, "job")
    assert fresh.terminal is not None and fresh.terminal.name is N.JOB_CANCELLED
    assert fresh.terminal.n == fresh.position  # re-sent after `connected`, under the snapshot's id
    restarted = World(clock)
    restarted.tracker.apply("/jobs/job/job.json", world.tracker.get("job").record, clock.now())  # type: ignore[union-attr]
    resync = restarted.open(loop, "job", f"b00t-{back.replay[-1].n + 50}")
    assert resync.resync and resync.terminal is not None and resync.terminal.name is N.JOB_CANCELLED


def test_a_retried_job_is_no_longer_finished(clock: FakeClock, loop: asyncio.AbstractEventLoop) -> None:
    world = World(clock)
    world.write(status=JobStatus.FAILED, error_message="boom")
    ended = world.open(loop, "job")
    assert ended.terminal is not None
    world.write(status=JobStatus.QUEUED, stage="Queued", percent=0, attempt=2)
    assert world.open(loop, "job").terminal is None


def event(n: int, name: EventName, job_id: str = "job") -> Event:
    return Event(n, name, job_id, {"jobId": job_id}, encode(name, f"b00t-{n}", {}))


def test_a_slow_subscriber_keeps_only_the_latest_progress_of_each_job_and_every_other_event(
    loop: asyncio.AbstractEventLoop,
) -> None:
    subscriber = Subscriber(StreamKind.ALL, None, loop, limit=100)
    subscriber.offer([event(1, N.STEP_PROGRESS, "a")])
    subscriber.offer([event(2, N.STEP_STATUS, "a")])
    subscriber.offer([event(3, N.STEP_PROGRESS, "b")])
    subscriber.offer([event(4, N.STEP_PROGRESS, "a")])
    subscriber.offer([event(5, N.JOB_COMPLETED, "b")])
    subscriber.offer([event(6, N.STEP_PROGRESS, "a")])
    taken = subscriber.take()
    assert [(e.n, e.job_id) for e in taken] == [(2, "a"), (3, "b"), (5, "b"), (6, "a")]
    assert subscriber.coalesced == 2 and subscriber.take() == []


def test_a_subscriber_past_its_bound_is_ended_and_emptied_so_memory_stays_bounded(
    loop: asyncio.AbstractEventLoop,
) -> None:
    subscriber = Subscriber(StreamKind.JOB, "job", loop, limit=3)
    for n in range(1, 1000):
        subscriber.offer([event(n, N.STEP_PROGRESS)])
    assert subscriber.queued == 1
    for n in range(1000, 1004):
        subscriber.offer([event(n, N.JOB_STATUS)])
    assert subscriber.ending is Ending.OVERFLOW and subscriber.queued == 0
    subscriber.offer([event(2000, N.JOB_STATUS)])
    assert subscriber.queued == 0


def test_closing_streams_frees_them_and_the_counts_follow(clock: FakeClock, loop: asyncio.AbstractEventLoop) -> None:
    world = World(clock)
    world.write(percent=1)
    openings = [world.open(loop, "job"), world.open(loop, "job"), world.open(loop, None)]
    assert world.broker.counts() == {"job": 2, "all": 1} and world.broker.subscribers_of("job") == 2
    world.write(percent=2)
    assert all(o.subscriber is not None and o.subscriber.queued == 1 for o in openings)
    for opening in openings:
        world.broker.close(opening.subscriber)
        world.broker.close(opening.subscriber)
    assert world.broker.counts() == {"job": 0, "all": 0} and world.broker.subscribers_of("job") == 0


def test_after_shutdown_every_stream_is_ending_and_new_ones_get_no_subscription(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock)
    world.write(percent=1)
    live = world.open(loop, None)
    world.broker.shutdown()
    assert live.subscriber is not None and live.subscriber.ending is Ending.SHUTDOWN
    assert world.open(loop, None).subscriber is None
    world.broker.reopen()
    assert world.open(loop, None).subscriber is not None


def test_an_open_stream_does_not_keep_the_snapshot_it_sent(clock: FakeClock, loop: asyncio.AbstractEventLoop) -> None:
    world = World(clock)
    for i in range(3):
        world.write(f"job-{i}", percent=10)
    opening = world.open(loop, None)
    assert isinstance(opening.snapshot, list) and len(opening.snapshot) == 3
    stream = EventStreamResponse(world.broker, None, None, clock=clock, heartbeat=60, retry_ms=1000)

    async def first_frame() -> bytes:
        frames = stream.frames(opening)
        frame = await frames.__anext__()
        world.write("job-0", percent=20)  # then one live event: the stream is past its opening
        await frames.__anext__()
        await frames.aclose()
        return frame

    frame = loop.run_until_complete(first_frame())
    assert json.loads(frame.decode().split("data: ", 1)[1])["count"] == 3  # it was sent...
    # ...and is not held for the stream's life (an idle all-jobs stream held every job's view).
    assert opening.snapshot is None and opening.snapshot_states == [] and opening.replay == []


def test_the_initial_scan_publishes_no_event_for_jobs_nobody_follows_and_a_later_client_sees_them_all(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock, starting=True)
    world.write("done", status=JobStatus.COMPLETED, stage="Complete", percent=100, raw_status="completed")
    world.write("live", percent=40)
    assert world.broker.buffered() == [] and world.broker.skipped_discoveries == 2
    world.scanning = False
    board = world.open(loop, None)
    assert {view["id"] for view in board.snapshot} == {"done", "live"}
    done = world.open(loop, "done")  # the terminal event is built when a stream asks for it
    assert done.terminal is not None and done.terminal.name is N.JOB_COMPLETED
    world.write("new", percent=1)  # after the scan, every discovery is an event again
    assert [(e.name, e.job_id) for e in world.broker.buffered()] == [(N.JOB_STATUS, "new")]
    assert world.broker.skipped_discoveries == 2


def test_during_the_initial_scan_a_discovery_someone_follows_is_published(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock, starting=True)
    world.write("first", percent=10)
    board = world.open(loop, None)  # a board connected while the scan goes on
    world.write("second", percent=20)
    assert [(e.name, e.job_id) for e in world.broker.buffered()] == [(N.JOB_STATUS, "second")]
    assert board.subscriber is not None and world.broker.skipped_discoveries == 1


def test_a_client_resuming_from_before_a_skipped_discovery_resyncs_instead_of_missing_the_job(
    clock: FakeClock, loop: asyncio.AbstractEventLoop
) -> None:
    world = World(clock, starting=True)
    world.write("first", percent=10)
    before = world.open(loop, None)
    world.write("first", percent=11)
    world.broker.close(before.subscriber)  # the board's connection drops
    world.write("second", percent=20)  # discovered while nobody listened: no event
    back = world.open(loop, None, f"b00t-{before.position + 1}")
    assert back.resync and back.replay == []
    assert {view["id"] for view in back.snapshot} == {"first", "second"}
    world.scanning = False
    world.write("second", percent=30)
    follower = world.open(loop, "second", f"b00t-{before.position}")  # its job log starts after the skip
    assert follower.resync and follower.snapshot["percent"] == 30
    caught_up = world.open(loop, None, back.first_id)  # from after the skip, replay works as ever
    assert not caught_up.resync and [e.data["percent"] for e in caught_up.replay] == [30]
