"""Aura's frontend against the sidecar's REST routes: every field and type AURA_API.md section 7 says Aura's
clients read, through a real server, for records the Aura test double wrote at the end of each lifecycle.

Each test names the section 7 row it satisfies ("row: consumer -> route").
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.support import HANG_S, wait_for, write_native
from tests.support.aura_lifecycles import (
    JOB_QUEUE_TSX,
    PLUS_LINE,
    STALL_MESSAGE,
    VIDEO_BYTES,
    cancel,
    exception_path,
    fail_plainly,
    pause,
    running,
    stall_kill,
    succeed,
)
from tests.support.aura_writer import QUEUED, SKIPPED, AuraJob
from tests.support.live_server import LiveServer, live_server

# What each lifecycle's record must look like to Aura's clients: (our/MapJobStatus word, /progress word,
# /output status word).
LIFECYCLES = {
    "success": ("completed", "completed", "done"),
    "stall-kill": ("failed", "failed", "failed"),
    "exception-path": ("running", "running", "running"),
    "cancel": ("cancelled", "idle", "canceled"),
    "pause": ("paused", "idle", "paused"),
    "old-build-cancel": ("cancelled", "idle", "canceled"),
    "old-build-done": ("completed", "completed", "done"),
    "plain-failure": ("failed", "failed", "failed"),
    "running": ("running", "running", "running"),
    "queued": ("queued", "idle", "queued"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("aura")
    jobs_dir = root / "jobs"
    jobs_dir.mkdir()
    succeed(running(jobs_dir, "success"), root / "Videos" / "success.mp4")
    stall_kill(running(jobs_dir, "stall-kill", percent=95, stage="Rendering"))
    exception_path(jobs_dir, "exception-path", b"[h264 @ 0x1] error while decoding\nConversion failed!\n")
    cancel(running(jobs_dir, "cancel"))
    pause(running(jobs_dir, "pause"))
    # The old build (no Paused): 5 is Canceled there, told apart by CanceledUtc.
    cancel(running(jobs_dir, "old-build-cancel"), status=SKIPPED)
    fail_plainly(running(jobs_dir, "plain-failure"))
    # ... and 2 is Done there (Paused in current builds), told apart by CompletedUtc.
    old_done = running(jobs_dir, "old-build-done")
    succeed(old_done, root / "Videos" / "old.mp4")
    old_done.status = 2
    old_done.write()
    running(jobs_dir, "running")
    AuraJob(jobs_dir, id="queued", status=QUEUED, created=time.time()).write()
    with live_server(jobs_dir) as live:
        wait_for(lambda: len(get(live, "/api/jobs")["jobs"]) == len(LIFECYCLES), timeout=HANG_S, what="every job")
        yield live


def get(live: LiveServer, path: str) -> Any:
    response = httpx.get(f"{live.url}{path}", timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response.json()


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@pytest.mark.parametrize("job_id", sorted(LIFECYCLES))
def test_get_job_has_every_field_finalexports_polling_fallback_reads(server: LiveServer, job_id: str) -> None:
    """Row: AVS/ITA FinalExport polling fallback -> GET /api/jobs/{id} (status, progress ?? percent, stage,
    outputPath, errorMessage, progressMessage, artifacts); and state/jobs.ts's Job type."""
    body = get(server, f"/api/jobs/{job_id}")
    assert body["status"] == LIFECYCLES[job_id][0]
    assert is_int(body["progress"]) and body["progress"] == int(body["percent"])
    assert isinstance(body["stage"], str) and body["stage"]
    assert body["outputPath"] is None or isinstance(body["outputPath"], str)
    assert body["errorMessage"] is None or isinstance(body["errorMessage"], str)
    # Aura's progressMessage is the last Logs line: a queued job has none yet.
    assert isinstance(body["progressMessage"], str) if job_id != "queued" else body["progressMessage"] is None
    assert isinstance(body["correlationId"], str) and body["correlationId"]
    assert isinstance(body["artifacts"], list)
    for artifact in body["artifacts"]:
        assert artifact["path"] == artifact["filePath"] and isinstance(artifact["type"], str)
        assert artifact["sizeBytes"] is None or is_int(artifact["sizeBytes"])


def test_a_finished_job_shows_its_video_artifact_and_output_path(server: LiveServer) -> None:
    """Row: AVS FinalExport polling fallback -> GET /api/jobs/{id}: resolving needs an output path."""
    body = get(server, "/api/jobs/success")
    assert body["outputPath"].endswith("success.mp4") and body["progress"] == 100
    assert [(a["type"], a["sizeBytes"]) for a in body["artifacts"]] == [("video", VIDEO_BYTES), ("subtitle", 42)]
    assert body["progressMessage"].endswith("Video generation complete")


def test_failed_and_cancelled_jobs_carry_the_words_finalexport_throws_on(server: LiveServer) -> None:
    """Row: FinalExport polling fallback: `failed` throws the errorMessage; `cancelled` throws "was cancelled"."""
    assert get(server, "/api/jobs/stall-kill")["errorMessage"]
    assert get(server, "/api/jobs/plain-failure")["errorMessage"] == "TTS provider refused the request"
    assert get(server, "/api/jobs/cancel")["status"] == "cancelled"


def test_a_logged_plus_sign_reads_back_as_a_plus_not_its_escape(server: LiveServer) -> None:
    """Row: GET /api/jobs/{id} progressMessage; the record on disk holds `\\u002B` and CRLF line ends."""
    raw = (server.sidecar.jobs_dir / "running" / "job.json").read_bytes()
    assert b"\\u002B" in raw and b"\r\n" in raw and not raw.startswith(b"\xef\xbb\xbf")
    text = httpx.get(f"{server.url}/api/jobs/running/logs", timeout=5).text
    assert PLUS_LINE in text and "\\u002B" not in text


def test_an_unknown_job_is_a_404_problem(server: LiveServer) -> None:
    """Row: state/jobs.ts -> GET /api/jobs/{id}; FinalExport keeps polling on errors."""
    response = httpx.get(f"{server.url}/api/jobs/no-such-job", timeout=5)
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


def test_the_job_list_is_an_object_with_jobs(server: LiveServer) -> None:
    """Row: state/jobs.ts -> GET /api/jobs (`jobs`)."""
    body = get(server, "/api/jobs?limit=50")
    assert isinstance(body["jobs"], list) and body["count"] == len(body["jobs"]) == len(LIFECYCLES)


@pytest.mark.parametrize("job_id", sorted(LIFECYCLES))
def test_progress_has_what_apps_global_poller_reads(server: LiveServer, job_id: str) -> None:
    """Row: App.tsx global poller -> GET /api/jobs/{id}/progress (progress, currentStage, status exactly
    `completed` or `failed` to stop)."""
    body = get(server, f"/api/jobs/{job_id}/progress")
    assert body["status"] == LIFECYCLES[job_id][1]
    assert body["status"] in ("running", "completed", "failed", "idle")
    assert is_int(body["progress"]) and isinstance(body["currentStage"], str) and body["currentStage"]
    assert body["jobId"] == job_id and isinstance(body["correlationId"], str)
    assert body["jobStatus"] == LIFECYCLES[job_id][0]  # ours, kept next to Aura's word
    assert body["completedAt"] is None or isinstance(body["completedAt"], str)


def test_output_says_not_yet_generated_without_an_output_path(server: LiveServer) -> None:
    """Row: AVS FinalExport Force Complete -> GET /api/jobs/{id}/output (exists, path, sizeBytes): shape 1."""
    body = get(server, "/api/jobs/running/output")
    assert body["exists"] is False and body["message"] == "Output file not yet generated"
    assert (body["status"], is_int(body["progress"]), body["stage"]) == ("running", True, "Visuals")
    assert "path" not in body and isinstance(body["correlationId"], str)


def test_output_of_a_finished_job_is_the_file_with_its_size(server: LiveServer) -> None:
    """Row: FinalExport Force Complete and its >=95 % stall check -> /output `exists && path && sizeBytes>0`."""
    body = get(server, "/api/jobs/success/output")
    assert body["exists"] is True and body["path"].endswith("success.mp4")
    assert body["sizeBytes"] == VIDEO_BYTES and body["status"] == "done" and isinstance(body["createdAt"], str)


def test_output_names_the_expected_path_when_the_file_is_gone(server: LiveServer, tmp_path: Path) -> None:
    """Row: /output shape 2: the path is set but no file (or not a regular file) is there."""
    video = Path(get(server, "/api/jobs/success/output")["path"])
    moved = tmp_path / "moved.mp4"
    os.replace(video, moved)
    try:
        body = get(server, "/api/jobs/success/output")
        assert body["exists"] is False and body["expectedPath"] == str(video)
        assert body["message"] == "Output path set but file not found on disk"
        os.mkfifo(video)  # never opened: only lstat'ed (docs/security.md)
        body = get(server, "/api/jobs/success/output")
        assert body["exists"] is False and "not a regular file" in body["message"]
    finally:
        if video.exists():
            video.unlink()
        os.replace(moved, video)


def test_output_of_an_unknown_job_is_404(server: LiveServer) -> None:
    """Row: /output 404 ProblemDetails for an unknown job."""
    response = httpx.get(f"{server.url}/api/jobs/nope/output", timeout=5)
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


def test_failure_details_of_a_stall_kill_are_auras_job_failure(server: LiveServer) -> None:
    """Row: state/jobs.ts -> GET /api/jobs/{id}/failure-details (the JobFailure type, camelCase)."""
    body = get(server, "/api/jobs/stall-kill/failure-details")
    assert body["errorCode"] == "E305-JOB_STALLED" and body["message"]
    assert body["suggestedActions"] == ["Retry the job", "Check the ffmpeg log"]
    assert isinstance(body["failedAt"], str) and body["stage"] == "Rendering"
    assert isinstance(body["correlationId"], str)
    for key in ("stderrSnippet", "installLogSnippet", "logPath"):
        assert key in body


def test_failure_details_without_failure_details_are_auras_fallback_body(server: LiveServer) -> None:
    """Row: GET …/failure-details of a Failed job with no FailureDetails: Aura's built body."""
    body = get(server, "/api/jobs/plain-failure/failure-details")
    assert body["message"] == "TTS provider refused the request"
    assert body["suggestedActions"] == ["Check logs for details", "Retry the operation"]
    assert isinstance(body["failedAt"], str) and isinstance(body["stage"], str)


@pytest.mark.parametrize(
    "job_id", ["success", "cancel", "pause", "running", "exception-path", "old-build-cancel", "queued"]
)
def test_failure_details_of_a_job_that_did_not_fail_is_400_as_aura_answers(server: LiveServer, job_id: str) -> None:
    """Row: state/jobs.ts: failure-details 404 or 400 -> "no details" (Aura: 400 `Job Not Failed`)."""
    response = httpx.get(f"{server.url}/api/jobs/{job_id}/failure-details", timeout=5)
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Job Not Failed" and body["currentStatus"] == LIFECYCLES[job_id][0]
    assert f"/api/jobs/{job_id}/explain" in body["detail"]
    assert httpx.get(f"{server.url}/api/jobs/nope/failure-details", timeout=5).status_code == 404


def test_queue_items_have_what_job_queue_reads_and_its_status_mapping_holds(server: LiveServer) -> None:
    """Row: components/Jobs/JobQueue.tsx -> GET /api/queue (items: jobId, status, progress, currentStage,
    enqueuedAt, outputPath, correlationId; count; the status mapping of section 2)."""
    body = get(server, "/api/queue?limit=100")
    assert body["count"] == len(body["jobs"]) == len(LIFECYCLES) and body["filterStatus"] is None
    for item in body["jobs"]:
        word = item["status"]
        assert word in ("Pending", "Processing", "Paused", "Completed", "Failed", "Cancelled")
        mapped = JOB_QUEUE_TSX.get(word.lower(), "queued")
        assert mapped == {"cancelled": "canceled"}.get(item["jobStatus"], item["jobStatus"]), item
        assert isinstance(item["jobId"], str) and is_int(item["progress"])
        assert isinstance(item["currentStage"], str) and isinstance(item["enqueuedAt"], str)
        assert item["outputPath"] is None or isinstance(item["outputPath"], str)
        assert isinstance(item["correlationId"], str)
    words = {item["jobId"]: item["status"] for item in body["jobs"]}
    assert (words["running"], words["success"], words["cancel"], words["pause"]) == (
        "Processing",
        "Completed",
        "Cancelled",
        "Paused",
    )


def test_the_queue_filters_by_auras_queue_words(server: LiveServer) -> None:
    """Row: JobQueue.tsx -> GET /api/queue?status= (Aura's words)."""
    body = get(server, "/api/queue?status=Processing")
    assert {item["jobId"] for item in body["jobs"]} == {"running", "exception-path"}
    assert body["filterStatus"] == "Processing" and body["count"] == 2


def test_logs_are_text_lines_joined_by_newlines(server: LiveServer) -> None:
    """Row: JobQueue.tsx -> GET /api/jobs/{id}/logs ("logs as text")."""
    response = httpx.get(f"{server.url}/api/jobs/success/logs", timeout=5)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.split("\n")
    assert len(lines) == 4 and lines[-1].endswith("Video generation complete") and "\r" not in response.text
    assert httpx.get(f"{server.url}/api/jobs/nope/logs", timeout=5).status_code == 404
    assert httpx.get(f"{server.url}/api/jobs/queued/logs", timeout=5).text == "No logs available for this job"


def test_stall_kill_failure_message_is_auras_own(server: LiveServer) -> None:
    """Row: FinalExport job-failed / polling `failureDetails.message`: the E305 message is served as written."""
    # Not the pipeline's echo "Job was cancelled by user": the user never cancelled it.
    assert get(server, "/api/jobs/stall-kill/failure-details")["message"] == STALL_MESSAGE


class AuraApiDouble(BaseHTTPRequestHandler):
    """Aura's JobsController answering retry and cancel as AURA_API.md section 3 says (202 and its body)."""

    def do_POST(self) -> None:
        job_id, action = self.path.split("?")[0].split("/")[3:5]
        body: dict[str, object] = {"jobId": job_id, "message": f"{action} requested", "correlationId": "0HN1:00000002"}
        body |= (
            {"currentStatus": "Running", "cleanupScheduled": True} if action == "cancel" else {"strategy": "automatic"}
        )
        data = json.dumps(body).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        type(self).seen.append(f"{action} {job_id}")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    seen: ClassVar[list[str]] = []


def test_cancel_and_retry_answer_ok_as_the_queue_and_force_complete_only_check(jobs_dir: Path) -> None:
    """Rows: AVS FinalExport Force Complete -> POST …/cancel; JobQueue.tsx -> POST …/retry, …/cancel (only
    `response.ok`); features/render/api/jobs.ts -> POST …/retry?strategy=. Forwarded to Aura (--upstream)."""
    running(jobs_dir, "busy")
    stall_kill(running(jobs_dir, "dead", percent=95, stage="Rendering"))
    aura_api = ThreadingHTTPServer(("127.0.0.1", 0), AuraApiDouble)
    threading.Thread(target=aura_api.serve_forever, daemon=True).start()
    try:
        upstream = f"http://127.0.0.1:{aura_api.server_address[1]}"
        with live_server(jobs_dir, upstream=upstream) as live:
            wait_for(lambda: len(get(live, "/api/jobs")["jobs"]) == 2, timeout=HANG_S, what="both jobs")
            cancelled = httpx.post(f"{live.url}/api/jobs/busy/cancel", timeout=10)
            retried = httpx.post(f"{live.url}/api/jobs/dead/retry?strategy=automatic", timeout=10)
            assert cancelled.is_success and cancelled.json()["jobId"] == "busy", cancelled.text
            assert retried.is_success and retried.json()["jobId"] == "dead", retried.text
            assert AuraApiDouble.seen == ["cancel busy", "retry dead"]
            # Pause and resume are Aura's own (docs/aura.md): not here, so route them to Aura.
            assert httpx.post(f"{live.url}/api/jobs/busy/pause", timeout=10).status_code in (404, 405)
    finally:
        aura_api.shutdown()
        aura_api.server_close()


def test_logs_serve_a_log_file_only_from_the_allowed_roots(jobs_dir: Path, tmp_path: Path) -> None:
    """/logs reads content, so only under the allowed roots (docs/security.md): a native job's log inside the
    jobs dir is served from its end; one naming a file elsewhere gets the record's own tail instead."""
    inside = jobs_dir / "inside" / "job.log"
    inside.parent.mkdir(parents=True)
    inside.write_text("".join(f"line {n}\n" for n in range(3)))
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve\n")
    write_native(jobs_dir, "inside", logPath=str(inside), logs=["from the record"])
    write_native(jobs_dir, "outside", logPath=str(secret), logs=["from the record"])
    with live_server(jobs_dir) as live:
        wait_for(lambda: len(get(live, "/api/jobs")["jobs"]) == 2, timeout=HANG_S, what="both jobs")
        assert httpx.get(f"{live.url}/api/jobs/inside/logs", timeout=5).text == "line 0\nline 1\nline 2"
        refused = httpx.get(f"{live.url}/api/jobs/outside/logs", timeout=5).text
    assert refused == "from the record" and "do not serve" not in refused
