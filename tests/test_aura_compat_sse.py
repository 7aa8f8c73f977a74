"""Aura's frontend against the sidecar's event streams: every event and field AURA_API.md section 7 says
Aura's clients read on `/api/jobs/{id}/events`, `/api/events` and `/api/jobs/{id}/progress/stream`, through a
real server, while the Aura test double writes each lifecycle (two-write progress, in place, 4 KiB chunks).

Each test names the section 7 row it satisfies ("row: consumer -> stream").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aura_monitor.api import events as events_api
from tests.support import HANG_S, wait_for
from tests.support.aura_lifecycles import (
    STALL_MESSAGE,
    VIDEO_BYTES,
    cancel,
    exception_path,
    pause,
    running,
    stall_kill,
    succeed,
    wait_status,
)
from tests.support.aura_writer import CANCELED, RUNNING, SKIPPED
from tests.support.live_server import Received, SseClient, live_server

# state/jobs.ts and useVideoGeneration.ts read these camelCase keys of step-progress; Aura's server sends the
# PascalCase ones (ProgressEventDto).
STEP_PROGRESS_CAMEL = (
    "step",
    "progressPct",
    "phase",
    "message",
    "substageDetail",
    "currentItem",
    "totalItems",
    "elapsedTime",
    "estimatedTimeRemaining",
    "percent",
    "stage",
    "elapsedSeconds",
    "estimatedRemainingSeconds",
    "etaSeconds",
)
STEP_PROGRESS_PASCAL = (
    "JobId",
    "Stage",
    "Percent",
    "EtaSeconds",
    "Message",
    "Warnings",
    "CorrelationId",
    "SubstageDetail",
    "CurrentItem",
    "TotalItems",
    "Timestamp",
    "Phase",
    "ElapsedSeconds",
    "EstimatedRemainingSeconds",
)
PHASES = ("plan", "tts", "visuals", "compose", "render", "complete")


def named(client: SseClient, name: str) -> list[dict[str, Any]]:
    return [e.data for e in client.events if e.name == name]


def connected_quickly(client: SseClient) -> Received:
    """AVS FinalExport polls instead when neither `connected` nor onopen comes within 5 s."""
    event = client.wait_for_event("connected", timeout=5)
    assert event.mono - client.opened_at < 5
    return event


def test_a_successful_job_streams_what_auras_store_and_finalexport_read(jobs_dir: Path, tmp_path: Path) -> None:
    """Rows: AVS FinalExport -> /events (connected within 5 s; job-completed status, outputPath,
    output.videoPath, artifacts[].path/filePath/type); state/jobs.ts -> /events (job-status, step-progress,
    step-status, job-completed artifacts[] and output.videoPath/subtitlePath; closes after it);
    useVideoGeneration/JobProgressDrawer -> /events step-progress."""
    job = running(jobs_dir, "job")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/jobs/job/events")
        connected_quickly(client)
        job.write_progress(time.time(), "Rendering", 70, "Rendering 70%")
        client.wait(lambda ev: any(e.name == "step-progress" for e in ev), what="step-progress")
        succeed(job, tmp_path / "Videos" / "out.mp4")
        client.wait_ended()
    progress = named(client, "step-progress")[0]
    for key in STEP_PROGRESS_CAMEL + STEP_PROGRESS_PASCAL:
        assert key in progress, key
    assert (progress["step"], progress["progressPct"], progress["Percent"]) == ("Rendering", 70, 70)
    assert progress["phase"] == progress["Phase"] == "render"
    # The first of Aura's two writes moves Percent before CurrentProgress: the message may still be the last one.
    assert progress["message"] in ("Rendering 70%", "Visuals 40%")
    assert isinstance(progress["elapsedSeconds"], float) and progress["JobId"] == "job"
    step = named(client, "step-status")[0]
    assert step["step"] == "Rendering" and step["phase"] in PHASES
    statuses = named(client, "job-status")
    assert all({"status", "stage", "percent"} <= set(s) for s in statuses) and statuses[-1]["status"] == "completed"
    assert client.names()[-1] == "job-completed"
    done = named(client, "job-completed")[0]
    assert done["status"] == "completed" and done["outputPath"].endswith("out.mp4")
    subtitles = str(tmp_path / "Videos" / "out.srt")
    assert done["output"] == {"videoPath": done["outputPath"], "subtitlePath": subtitles, "sizeBytes": VIDEO_BYTES}
    assert [(a["type"], a["path"] == a["filePath"]) for a in done["artifacts"]] == [("video", True), ("subtitle", True)]
    assert isinstance(done["correlationId"], str)


def test_a_stall_killed_job_ends_its_events_with_job_failed_as_auras_clients_read_it(jobs_dir: Path) -> None:
    """Rows: AVS FinalExport -> /events job-failed (errorMessage, failureDetails.message); state/jobs.ts ->
    job-failed (errorMessage, errors[0].message, logs); useVideoGeneration -> job-failed (errorMessage, logs,
    stage). Lifecycle: E305 stall kill (Failed + CanceledUtc + "cancelled by user")."""
    job = running(jobs_dir, "killed", percent=95, stage="Rendering")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "killed", "running")
        client = SseClient(server.port, "/api/jobs/killed/events")
        connected_quickly(client)
        stall_kill(job)
        client.wait_ended()
    assert client.names()[-1] == "job-failed" and "job-cancelled" not in client.names()
    failed = named(client, "job-failed")[0]
    assert failed["errorMessage"] == STALL_MESSAGE and failed["failureDetails"]["message"] == STALL_MESSAGE
    assert failed["errors"][0]["message"] == failed["errors"][0]["Message"] == STALL_MESSAGE
    assert failed["errors"][0]["Code"] == "E305-JOB_STALLED" and failed["stage"] == "Rendering"
    assert isinstance(failed["logs"], list) and 0 < len(failed["logs"]) <= 10
    assert all(isinstance(line, str) for line in failed["logs"])


@pytest.mark.parametrize(("status", "lifecycle"), [(CANCELED, "cancel"), (SKIPPED, "old-build cancel")])
def test_a_cancelled_job_ends_its_events_with_job_cancelled_and_its_message(
    jobs_dir: Path, status: int, lifecycle: str
) -> None:
    """Row: state/jobs.ts -> /events job-cancelled (`message`); lifecycles: cancel, old-build numbering (5)."""
    job = running(jobs_dir, "job")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/jobs/job/events")
        connected_quickly(client)
        cancel(job, status=status)
        client.wait_ended()
    assert client.names()[-1] == "job-cancelled", lifecycle
    assert named(client, "job-cancelled")[0]["message"] == "Job was cancelled by user"


def test_a_paused_job_shows_paused_then_running_and_its_stream_stays_open(jobs_dir: Path) -> None:
    """Row: state/jobs.ts -> /events job-status (`status`, `stage`, `percent`); lifecycle: pause and resume."""
    job = running(jobs_dir, "job")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/jobs/job/events")
        connected_quickly(client)
        pause(job)
        client.wait(lambda ev: any(e.name == "job-status" and e.data["status"] == "paused" for e in ev), what="paused")
        job.status = RUNNING
        job.write()
        client.wait(lambda ev: [e.data["status"] for e in ev if e.name == "job-status"][-1:] == ["running"])
        assert not client.ended.is_set()
        statuses = named(client, "job-status")
        assert [s["statusName"] for s in statuses] == ["Paused", "Running"]  # Aura's enum names, alongside
        assert all(isinstance(s["percent"], (int, float)) and s["stage"] == "Visuals" for s in statuses)
        client.close()


def test_a_stall_sends_the_warning_auras_hooks_read(jobs_dir: Path) -> None:
    """Rows: AVS FinalExport -> /events warning (`message`); useVideoGeneration -> warning
    (stallDurationSeconds, percent, step)."""
    job = running(jobs_dir, "job", percent=30, stage="Visuals")
    with live_server(jobs_dir, stall_threshold=1.0) as server:
        client = SseClient(server.port, "/api/jobs/job/events")
        connected_quickly(client)
        # Progress made while the client listens, then none: the stall (and its warning) happens live.
        job.write_progress(time.time(), "Visuals", 40, "Visuals 40%")
        warning = client.wait_for_event("warning", timeout=HANG_S).data
        client.close()
    assert warning["stallDurationSeconds"] >= 1.0 and warning["percent"] == 40 and warning["step"] == "Visuals"
    assert "No progress for" in warning["message"] and warning["thresholdSeconds"] == 1.0


def test_the_all_jobs_stream_carries_the_same_job_completed(jobs_dir: Path, tmp_path: Path) -> None:
    """Row: AVS FinalExport / state/jobs.ts -> /events, as `/api/events` sends it (artifacts[] required)."""
    job = running(jobs_dir, "job")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/events")
        connected_quickly(client)
        succeed(job, tmp_path / "out.mp4")
        done = client.wait_for_event("job-completed", job_id="job").data
        client.close()
    assert done["artifacts"][0]["path"] == done["output"]["videoPath"] == str(tmp_path / "out.mp4")


def progress_frames(client: SseClient) -> list[dict[str, Any]]:
    return named(client, "job-progress")


@pytest.mark.parametrize(
    ("lifecycle", "word"),
    [("success", "completed"), ("stall kill", "failed"), ("cancel", "cancelled"), ("old-build cancel", "cancelled")],
)
def test_the_progress_stream_ends_with_job_completed_whatever_the_outcome(
    jobs_dir: Path, tmp_path: Path, lifecycle: str, word: str
) -> None:
    """Row: ITA FinalExport -> /progress/stream (job-progress percent, stage, message, status, outputPath;
    job-completed status, errorMessage, output path): only job-completed or job-failed settle its promise."""
    job = running(jobs_dir, "job", percent=95, stage="Rendering")
    finish: Callable[[], None] = {
        "success": lambda: succeed(job, tmp_path / "out.mp4"),
        "stall kill": lambda: stall_kill(job),
        "cancel": lambda: cancel(job),
        "old-build cancel": lambda: cancel(job, status=SKIPPED),
    }[lifecycle]
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/jobs/job/progress/stream")
        client.wait(lambda ev: any(e.name == "job-progress" for e in ev), timeout=HANG_S, what="job-progress")
        finish()
        client.wait_ended()
    names = client.names()
    assert names[-2:] == ["job-progress", "job-completed"], names
    for frame in progress_frames(client):
        assert {"percent", "stage", "status", "message", "outputPath"} <= set(frame)
        assert isinstance(frame["percent"], (int, float)) and isinstance(frame["stage"], str)
    assert progress_frames(client)[-1]["status"] == word
    completed = named(client, "job-completed")[0]
    assert completed["status"] == word and {"percent", "stage", "message", "outputPath"} <= set(completed)
    if word == "completed":
        assert completed["outputPath"] == str(tmp_path / "out.mp4")
    if lifecycle == "stall kill":
        assert completed["errorMessage"] == STALL_MESSAGE


def test_the_progress_stream_of_a_job_that_already_ended_still_settles(jobs_dir: Path, tmp_path: Path) -> None:
    """Row: ITA FinalExport -> /progress/stream, connecting after the job finished."""
    succeed(running(jobs_dir, "job"), tmp_path / "out.mp4")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "completed")
        client = SseClient(server.port, "/api/jobs/job/progress/stream")
        client.wait_ended()
    assert client.names()[-2:] == ["job-progress", "job-completed"]
    assert named(client, "job-completed")[0]["status"] == "completed"


def test_the_progress_stream_of_a_job_caught_mid_write_never_sends_a_job_progress_of_nulls(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Aura writes job records in place: a reader can catch one half-written. A stream opened on that unparsed
    state must not send a job-progress of nulls (Aura's export screen reads `status` from the first one): it
    waits for the record to parse, and if the wait ends first, it opens and sends progress once it does."""
    monkeypatch.setattr(events_api, "AURA_JOB_WAIT_S", 1.0)  # the wait ends while the record is still unparsed
    monkeypatch.setattr(events_api, "DISCOVERY_WAIT_S", 1.0)
    (jobs_dir / "midwrite").mkdir(parents=True)
    (jobs_dir / "midwrite" / "job.json").write_text('{"Id": "midwrite", "Status": ')  # as a reader catches it
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("midwrite") is not None, what="the job tracked, unparsed")
        client = SseClient(server.port, "/api/jobs/midwrite/progress/stream")
        client.wait_for_event("connected", timeout=HANG_S)
        running(jobs_dir, "midwrite")
        client.wait(lambda ev: any(e.name == "job-progress" for e in ev), what="the first job-progress")
        assert client.names()[:2] == ["connected", "job-progress"]
        assert all(frame["status"] == "running" for frame in progress_frames(client)), progress_frames(client)
        client.close()


def test_the_progress_stream_of_an_exception_path_record_keeps_reporting_running(jobs_dir: Path) -> None:
    """Row: ITA FinalExport -> /progress/stream; lifecycle: E304 exception path (the record stays Running on
    disk, so Aura's own stream would not settle either; the diagnosis names it: docs/diagnosis.md)."""
    exception_path(jobs_dir, "job", b"Conversion failed!\n")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        client = SseClient(server.port, "/api/jobs/job/progress/stream")
        client.wait(lambda ev: any(e.name == "job-progress" for e in ev), timeout=HANG_S, what="job-progress")
        frame = progress_frames(client)[0]
        assert not client.ended.is_set()
        client.close()
    assert (frame["status"], frame["stage"], frame["percent"]) == ("running", "Rendering", 62)
    assert frame["message"] and "job-completed" not in client.names()


def test_the_progress_stream_waits_for_a_job_whose_record_is_not_written_yet(jobs_dir: Path) -> None:
    """Row: ITA FinalExport -> /progress/stream, opened right after creating the job (Aura waits up to 20 s
    for it; an unknown job after that is a 404)."""
    with live_server(jobs_dir) as server:
        client = SseClient(server.port, "/api/jobs/late/progress/stream")
        time.sleep(0.5)  # the job is created after the client connected: that ordering is the point
        assert client.response.status == 0  # no 404 at once: the request waits for the job
        running(jobs_dir, "late")
        client.wait(lambda ev: any(e.name == "job-progress" for e in ev), timeout=25, what="the late job's progress")
        assert client.response.status == 200 and progress_frames(client)[0]["status"] == "running"
        client.close()
