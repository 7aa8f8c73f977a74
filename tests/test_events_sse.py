"""SSE over a real uvicorn server and real job files: order, replay, resync, fan-out, slow clients, shutdown."""

from __future__ import annotations

import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aura_monitor.events.subscriber import Ending
from tests.support import HANG_S, STARTUP_S, wait_for, write_native
from tests.support.live_server import LiveServer, Received, SseClient, live_server
from tests.support.live_stack import clean_env, free_port, managed, sidecar_argv, wait_ready


def n_of(event_id: str | None) -> int:
    assert event_id is not None
    return int(event_id.rpartition("-")[2])


def revision_seen(server: LiveServer, job_id: str, revision: int) -> bool:
    state = server.sidecar.tracker.get(job_id)
    return state is not None and state.record is not None and state.record.revision == revision


def write_and_wait(server: LiveServer, jobs_dir: Path, job_id: str, revision: int, **fields: Any) -> float:
    """Write one record revision and wait until the sidecar applied it (so no two writes coalesce)."""
    written = time.time()
    write_native(jobs_dir, job_id, revision=revision, **fields)
    wait_for(lambda: revision_seen(server, job_id, revision), timeout=HANG_S, what=f"{job_id} revision {revision}")
    return written


def reached(events: list[Received], job_id: str, percent: float) -> bool:
    return any(e.name == "step-progress" and e.data["jobId"] == job_id and e.data["percent"] == percent for e in events)


def job_events(client: SseClient, job_id: str) -> list[Received]:
    return [e for e in client.events if isinstance(e.data, dict) and e.data.get("jobId") == job_id]


LIFECYCLE = [
    {"status": "running", "stage": "Script", "percent": 5},
    {"status": "running", "stage": "TTS", "percent": 25},
    {"status": "running", "stage": "TTS", "percent": 40, "message": "voice 2 of 3"},
    {"status": "running", "stage": "Render", "percent": 80},
    {"status": "completed", "stage": "Complete", "percent": 100, "outputPath": "/videos/job.mp4"},
]
LIFECYCLE_EVENTS = [
    "job-status",
    "step-status",
    "step-progress",
    "step-status",
    "step-progress",
    "step-progress",
    "step-status",
    "step-progress",
    "job-status",
    "step-status",
    "step-progress",
    "job-completed",
]


def test_a_job_going_from_queued_to_completed_streams_connected_each_change_and_one_terminal_event(
    jobs_dir: Path,
) -> None:
    write_native(jobs_dir, "job", status="queued", stage="Queued", percent=0, revision=1)
    with live_server(jobs_dir, heartbeat_interval=0.3) as server:
        wait_for(lambda: revision_seen(server, "job", 1), what="the queued job")
        one = SseClient(server.port, "/api/jobs/job/events")
        every = SseClient(server.port, "/api/events")
        # Connected is sent on subscribing (how fast is bench/'s business, not this test's).
        connected = one.wait_for_event("connected", timeout=HANG_S)
        every.wait_for_event("connected", timeout=HANG_S)
        assert connected.retry == 2000 and connected.data["resync"] is False
        assert connected.data["job"]["status"] == "queued" and connected.data["job"]["steps"]
        assert one.response.headers["content-type"].startswith("text/event-stream")
        assert one.response.headers["cache-control"] == "no-cache"
        assert one.response.headers["x-accel-buffering"] == "no"

        for revision, fields in enumerate(LIFECYCLE, start=2):
            write_native(jobs_dir, "job", revision=revision, **fields)
            # Delivered before the next write: a stream behind by a write would get only its latest progress.
            for client in (one, every):
                client.wait(lambda ev, p=fields["percent"]: reached(ev, "job", p), what=f"{fields['percent']}%")
        one.wait_ended()  # a per-job stream ends after its terminal event
        every.wait_for_event("job-completed", job_id="job")  # sent after the last progress of the same write

        assert one.names() == ["connected", *LIFECYCLE_EVENTS]
        assert [e.name for e in job_events(every, "job") if e.name != "heartbeat"] == LIFECYCLE_EVENTS
        ids = [n_of(e.id) for e in one.events if e.name != "heartbeat"]
        assert ids == sorted(ids) and len(set(ids[1:])) == len(ids) - 1
        done = one.events[-1].data
        assert done["outputPath"] == "/videos/job.mp4" and done["status"] == "completed"
        progress = [e.data for e in one.events if e.name == "step-progress"]
        assert progress[2]["message"] == "voice 2 of 3" and progress[2]["previousPercent"] == 25

        beat = every.wait_for_event("heartbeat")
        before = every.events[every.events.index(beat) - 1]
        assert beat.id == before.id  # heartbeats repeat the last id, so resuming from one loses nothing
        every.close()


def test_a_client_resuming_with_last_event_id_receives_exactly_the_events_it_missed(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="Script", percent=10, revision=1)
    write_native(jobs_dir, "other", status="running", stage="Render", percent=10, revision=1)
    with live_server(jobs_dir) as server:
        wait_for(lambda: revision_seen(server, "job", 1) and revision_seen(server, "other", 1), what="two jobs")
        reference = SseClient(server.port, "/api/events")
        # Subscribed before the next write: a reference that connects after it gets that write in its
        # snapshot instead of as an event, one fewer than the count below (seen under load).
        reference.wait_for_event("connected")
        first = SseClient(server.port, "/api/jobs/job/events")
        first.wait_for_event("connected")
        write_and_wait(server, jobs_dir, "job", 2, status="running", stage="Script", percent=20)
        first.wait_for_event("step-progress")
        last = first.last_id
        first.close()

        # Each write is seen on the reference stream before the next: a stream that has not sent a job's
        # progress yet replaces it with the newer one (by design), which would merge two writes here.
        writes = [("job", 3, "TTS", 30), ("other", 2, "Render", 20), ("job", 4, "TTS", 40)]
        for job_id, revision, stage, percent in writes:
            write_and_wait(server, jobs_dir, job_id, revision, status="running", stage=stage, percent=percent)
            reference.wait(lambda ev, j=job_id, p=percent: reached(ev, j, p), what=f"{job_id} at {percent}%")
        reference.wait(lambda ev: len(job_events(reference, "job")) >= 4, what="the reference stream")
        missed = [(e.name, e.id, e.data) for e in job_events(reference, "job") if n_of(e.id) > n_of(last)]
        assert [m[0] for m in missed] == ["step-status", "step-progress", "step-progress"]

        again = SseClient(server.port, "/api/jobs/job/events", {"Last-Event-ID": str(last)})
        again.wait(lambda ev: len(ev) >= 1 + len(missed), what="connected and the replay")
        connected, *replayed = again.events
        assert connected.name == "connected" and connected.id == last
        assert connected.data["resync"] is False and connected.data["replayed"] == len(missed)
        assert [(e.name, e.id, e.data) for e in replayed] == missed

        write_and_wait(server, jobs_dir, "job", 5, status="failed", stage="TTS", percent=40, error={"code": "E1"})
        failed = again.wait_for_event("job-failed")
        assert failed.data["errors"][0]["code"] == "E1"
        again.wait_ended()
        reference.close()

        by_query = SseClient(server.port, f"/api/events?lastEventId={last}")
        by_query.wait_for_event("connected")
        assert by_query.events[0].data["replayed"] >= len(missed) and by_query.events[0].data["resync"] is False
        by_query.close()


@pytest.mark.reliability
def test_after_a_sidecar_restart_a_resuming_client_gets_a_resync_and_a_finished_job_its_terminal_event(
    jobs_dir: Path,
) -> None:
    write_native(jobs_dir, "job", status="running", stage="Render", percent=60, revision=1)
    with live_server(jobs_dir) as before:
        wait_for(lambda: revision_seen(before, "job", 1), what="the job")
        one = SseClient(before.port, "/api/jobs/job/events")
        every = SseClient(before.port, "/api/events")
        last_job = one.wait_for_event("connected").id
        last_all = every.wait_for_event("connected").id
    one.wait_ended()
    every.wait_ended()
    write_native(jobs_dir, "job", status="completed", stage="Complete", percent=100, revision=2, outputPath="/v.mp4")

    with live_server(jobs_dir) as after:
        # Connects before the new sidecar necessarily scanned the job: the route waits for it.
        again = SseClient(after.port, "/api/jobs/job/events", {"Last-Event-ID": str(last_job)})
        again.wait_ended()
        assert again.names() == ["connected", "job-completed"]
        connected, done = again.events
        assert connected.data["resync"] is True and connected.data["job"]["status"] == "completed"
        assert done.data["outputPath"] == "/v.mp4" and n_of(done.id) == n_of(connected.id)

        all_again = SseClient(after.port, "/api/events", {"Last-Event-ID": str(last_all)})
        snapshot = all_again.wait_for_event("connected").data
        assert snapshot["resync"] is True and [j["id"] for j in snapshot["jobs"]] == ["job"]
        all_again.close()

        # It now has the terminal event: resuming once more is 204, which tells EventSource to stop.
        finished = SseClient(after.port, "/api/jobs/job/events", {"Last-Event-ID": str(done.id)})
        finished.wait_ended()
        assert finished.response.status == 204 and finished.events == []


@pytest.mark.reliability
def test_a_hundred_concurrent_clients_all_receive_every_terminal_event(jobs_dir: Path) -> None:
    jobs = [f"job-{i}" for i in range(10)]
    for job_id in jobs:
        write_native(jobs_dir, job_id, status="running", stage="Render", percent=50, revision=1)
    with live_server(jobs_dir) as server:
        wait_for(lambda: all(revision_seen(server, j, 1) for j in jobs), what="ten jobs")
        per_job = [SseClient(server.port, f"/api/jobs/{job_id}/events") for job_id in jobs for _ in range(9)]
        everyone = [SseClient(server.port, "/api/events") for _ in range(10)]
        for client in per_job + everyone:
            client.wait_for_event("connected")
        assert server.sidecar.events.counts() == {"job": 90, "all": 10}
        gauge = httpx.get(f"{server.url}/metrics").text
        assert 'aura_sse_clients{stream="job"} 90.0' in gauge and 'aura_sse_clients{stream="all"} 10.0' in gauge
        assert httpx.get(f"{server.url}/api/jobs/job-0/explain").json()["sseSubscribers"] == 9

        outcomes = {"completed": "job-completed", "failed": "job-failed", "cancelled": "job-cancelled"}
        expected = {}
        for i, job_id in enumerate(jobs):
            status = list(outcomes)[i % 3]
            write_native(jobs_dir, job_id, status=status, stage="Render", percent=100, revision=2)
            expected[job_id] = outcomes[status]
        for client in per_job:
            client.wait_ended()
        for client in per_job:
            job_id = client.path.split("/")[3]
            terminal = [e.name for e in client.events if e.name.startswith("job-") and e.name != "job-status"]
            assert terminal == [expected[job_id]]
        for client in everyone:
            client.wait(lambda ev: sum(e.name in outcomes.values() for e in ev) >= len(jobs), what="ten endings")
            endings = sorted((e.data["jobId"], e.name) for e in client.events if e.name in outcomes.values())
            assert endings == sorted(expected.items())
        wait_for(lambda: server.sidecar.events.counts()["job"] == 0, timeout=HANG_S, what="per-job streams to be freed")
        for client in everyone:
            client.close()
        wait_for(lambda: server.sidecar.events.counts() == {"job": 0, "all": 0}, timeout=HANG_S, what="no subscribers")


@pytest.mark.reliability
def test_a_client_that_never_reads_keeps_memory_bounded_and_delays_no_one(jobs_dir: Path) -> None:
    flood = [f"flood-{i}" for i in range(20)]
    for job_id in [*flood, "marker"]:
        write_native(jobs_dir, job_id, status="running", stage="S0", percent=0, revision=1)
    with live_server(jobs_dir, sse_client_queue=50) as server:
        broker = server.sidecar.events
        wait_for(lambda: all(revision_seen(server, j, 1) for j in [*flood, "marker"]), what="the jobs")
        stuck = SseClient(server.port, "/api/events", rcvbuf=1024, read=False)
        wait_for(lambda: broker.counts()["all"] == 1, what="the stuck client subscribed")
        (stuck_subscriber,) = broker.streams()
        reader = SseClient(server.port, "/api/events")
        reader.wait_for_event("connected")
        writes = 3000
        done = threading.Event()
        peak_queue = [0]

        # Loopback sockets absorb about 1.6 MB before a sender blocks: long messages get there quickly.
        message = "encoding " + "x" * 1500

        def write_flood() -> None:
            for k in range(1, writes + 1):
                job_id = flood[k % len(flood)]
                stage = f"S{k // 200}"  # a stage change now and then: status events, which are never dropped
                percent = min(99, k / 40)
                write_native(
                    jobs_dir, job_id, status="running", stage=stage, percent=percent, revision=k + 1, message=message
                )
                peak_queue[0] = max(peak_queue[0], stuck_subscriber.queued)
            done.set()

        writer = threading.Thread(target=write_flood)
        began = time.monotonic()
        writer.start()
        latencies = []
        revision = 1
        while not done.is_set() or len(latencies) < 10:
            revision += 1
            percent = revision % 99 + 0.5
            mark = f"marker {revision}"
            written = time.time()
            write_native(
                jobs_dir, "marker", status="running", stage="S0", percent=percent, revision=revision, message=mark
            )
            seen = wait_for_progress(reader, "marker", mark)
            latencies.append(seen.wall - written)
            done.wait(0.02)  # pacing between samples, not synchronization
        writer.join()
        elapsed = time.monotonic() - began
        wait_for(
            lambda: all(revision_seen(server, j, last_revision(j, flood, writes)) for j in flood),
            timeout=HANG_S,
            what="every flood job's last write ingested",
        )
        assert stuck_subscriber.ending is Ending.OVERFLOW
        assert peak_queue[0] <= 50 + len(flood) + 1  # status events, plus one progress per job (and the marker)
        wait_for(lambda: broker.counts()["all"] == 1, timeout=HANG_S, what="the stuck client to be cut loose")
        # Every marker reached the reader during the flood (wait_for_progress fails on the first that does not):
        # the stuck client held nobody up. How fast is measured by bench/, not asserted here.
        assert len(latencies) >= 10
        last = n_of(broker.last_id)  # the newest event is never coalesced away: once it is in, all are
        reader.wait(
            lambda ev: any(e.id and n_of(e.id) >= last for e in ev), timeout=HANG_S, what="the reader to catch up"
        )
        published = {e.n for e in broker.buffered() if e.name.value == "step-status" and e.job_id in flood}
        received = {n_of(e.id) for e in reader.events if e.name == "step-status" and e.data["jobId"] in flood}
        assert published <= received
        print(
            f"\nflood: {writes} writes in {elapsed:.2f} s; marker write->event p50 "
            f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms over "
            f"{len(latencies)} samples; stuck client queue peak {peak_queue[0]}"
        )
        reader.close()
        stuck.close()


def wait_for_progress(client: SseClient, job_id: str, message: str) -> Received:
    def matching(event: Received) -> bool:
        return event.name == "step-progress" and event.data["jobId"] == job_id and event.data["message"] == message

    client.wait(lambda events: any(matching(e) for e in events), timeout=HANG_S, what=f"{job_id}: {message}")
    return next(e for e in client.events if matching(e))


def last_revision(job_id: str, flood: list[str], writes: int) -> int:
    index = flood.index(job_id)
    return max(k for k in range(1, writes + 1) if k % len(flood) == index) + 1


def test_the_server_stops_with_clients_connected_by_ending_their_streams_itself(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", revision=1)
    # uvicorn lets open responses finish for this long, then cuts them off: a stream that did not end on its
    # own would hold the stop for the whole of it, so stopping well inside it shows the streams ended.
    graceful_s = int(2 * HANG_S)
    with live_server(jobs_dir, graceful_shutdown_s=graceful_s) as server:
        wait_for(lambda: revision_seen(server, "job", 1), what="the job")
        clients = [SseClient(server.port, "/api/jobs/job/events") for _ in range(5)]
        clients += [SseClient(server.port, "/api/events") for _ in range(5)]
        clients.append(SseClient(server.port, "/api/jobs/job/progress/stream"))
        for client in clients:
            client.wait_for_event("connected", timeout=HANG_S)
        took = server.stop(timeout=graceful_s + HANG_S)
        assert took < graceful_s, f"shutdown waited out uvicorn's {graceful_s:g} s grace ({took:.1f} s)"
        for client in clients:
            client.wait_ended(HANG_S)
            assert client.finished, f"{client.path} was cut off, not ended by the server"


def test_aura_monitor_serve_exits_on_sigterm_with_streams_open_and_ends_each_of_them(
    jobs_dir: Path, tmp_path: Path
) -> None:
    write_native(jobs_dir, "job", status="running", revision=1)
    port = free_port()
    env = {**clean_env(), "AURA_MONITOR_LOG_LEVEL": "warning"}
    with managed("aura-monitor serve", sidecar_argv(jobs_dir, port), tmp_path / "serve.log", env) as sidecar:
        wait_ready(sidecar, f"http://127.0.0.1:{port}/healthz")
        clients = [SseClient(port, "/api/jobs/job/events") for _ in range(3)]
        clients += [SseClient(port, "/api/events") for _ in range(3)]
        for client in clients:
            client.wait_for_event("connected", timeout=HANG_S)
        sidecar.process.send_signal(signal.SIGTERM)
        code = sidecar.process.wait(STARTUP_S)
        assert code == 0, f"serve exited {code} on SIGTERM:\n{sidecar.log_tail()}"
        # serve's grace is uvicorn's 1 s: a stream the signal did not end would be cut off (no last chunk).
        for client in clients:
            client.wait_ended(HANG_S)
            assert client.finished, f"{client.path} was cut off, not ended by the server"


def test_the_aura_progress_stream_sends_job_progress_events_in_auras_shape(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="Script", percent=5, revision=1)
    with live_server(jobs_dir) as server:
        wait_for(lambda: revision_seen(server, "job", 1), what="the job")
        aura = SseClient(server.port, "/api/jobs/job/progress/stream")
        aura.wait(lambda ev: len(ev) >= 2, what="connected and the current progress")
        write_and_wait(server, jobs_dir, "job", 2, status="running", stage="TTS", percent=30, message="voice")
        # Sent before the next write: an unsent progress is replaced by a newer one (see the test above).
        aura.wait(lambda ev: len(ev) >= 3, what="the TTS progress")
        write_and_wait(
            server, jobs_dir, "job", 3, status="completed", stage="Complete", percent=100, outputPath="/v.mp4"
        )
        aura.wait_ended()
        # Aura ends this stream with job-completed after the job-progress carrying the final status (docs/aura.md).
        assert aura.names() == ["connected", "job-progress", "job-progress", "job-progress", "job-completed"]
        assert aura.events[-1].data["status"] == "completed" and aura.events[-1].data["outputPath"] == "/v.mp4"
        shapes = [e.data for e in aura.events[1:-1]]
        assert all(set(shape) == {"percent", "stage", "status", "message", "outputPath"} for shape in shapes)
        assert [(s["stage"], s["percent"], s["status"]) for s in shapes] == [
            ("Script", 5, "running"),
            ("TTS", 30, "running"),
            ("Complete", 100, "completed"),
        ]
        assert shapes[1]["message"] == "voice" and shapes[2]["outputPath"] == "/v.mp4"


def test_streams_of_unknown_or_unsafe_job_ids_are_problems_not_streams(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        missing = httpx.get(f"{server.url}/api/jobs/nope/events")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        unsafe = httpx.get(f"{server.url}/api/jobs/..evil/events")
        assert unsafe.status_code == 400
        assert server.sidecar.events.counts() == {"job": 0, "all": 0}
