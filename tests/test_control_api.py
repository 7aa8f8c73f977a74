"""Retry and cancel over a real server: token, status rules, races, request files, the reference worker, upstream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest

from aura_monitor.clock import SystemClock
from aura_monitor.pipeline.enqueue import enqueue_job
from aura_monitor.pipeline.request import RenderRequest
from aura_monitor.reporter import JobReporter
from tests.support import HANG_S, STARTUP_S, wait_for, write_native
from tests.support.aura_writer import DONE, FAILED, RUNNING, AuraJob
from tests.support.live_server import LiveServer, SseClient, live_server


def known(server: LiveServer, *job_ids: str) -> None:
    wait_for(lambda: all(server.sidecar.tracker.get(j) is not None for j in job_ids), what=f"jobs {job_ids}")


def retries(server: LiveServer, result: str) -> float | None:
    return server.sidecar.registry.get_sample_value("aura_job_retries_total", {"result": result})


def test_mutating_routes_need_the_bearer_token_when_one_is_configured(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    with live_server(jobs_dir, token="s3cret") as server:
        known(server, "job")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}):
            for action in ("retry", "cancel"):
                answer = httpx.post(f"{server.url}/api/jobs/job/{action}", headers=headers)
                assert answer.status_code == 401, (headers, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["www-authenticate"].startswith("Bearer")
        assert not (jobs_dir / "job" / "requests").exists()
        assert httpx.get(f"{server.url}/api/jobs/job").status_code == 200  # reading needs no token
        accepted = httpx.post(f"{server.url}/api/jobs/job/retry", headers={"Authorization": "Bearer s3cret"})
        assert accepted.status_code == 202


def test_retry_and_cancel_follow_the_job_status(jobs_dir: Path) -> None:
    write_native(jobs_dir, "running", status="running")
    write_native(jobs_dir, "queued", status="queued", stage="Queued", percent=0)
    write_native(jobs_dir, "done", status="completed", stage="Complete", percent=100)
    write_native(jobs_dir, "failed", status="failed", error={"code": "E1", "message": "boom"})
    write_native(jobs_dir, "cancelled", status="cancelled")
    with live_server(jobs_dir) as server:
        known(server, "running", "queued", "done", "failed", "cancelled")

        def post(job: str, action: str) -> httpx.Response:
            return httpx.post(f"{server.url}/api/jobs/{job}/{action}")

        for job in ("running", "queued", "done"):
            refused = post(job, "retry")
            assert refused.status_code == 409 and "only failed or cancelled" in refused.json()["detail"]
        for job in ("done", "failed", "cancelled"):
            refused = post(job, "cancel")
            assert refused.status_code == 409 and "already ended" in refused.json()["detail"]
        assert post("nope", "retry").status_code == 404 and post("nope", "cancel").status_code == 404
        assert post("..x", "retry").status_code == 400

        cancel = post("running", "cancel")
        assert cancel.status_code == 202
        body = cancel.json()
        assert body["action"] == "cancel" and body["channel"] == "request-file" and body["jobId"] == "running"
        request = json.loads((jobs_dir / "running" / "requests" / "cancel.json").read_text())
        assert request["action"] == "cancel" and request["requestId"] == body["requestId"]

        retry = post("cancelled", "retry")
        assert retry.status_code == 202
        assert retry.json() | {"requestedAt": None, "requestId": None, "detail": None} == {
            "jobId": "cancelled",
            "action": "retry",
            "status": "accepted",
            "channel": "request-file",
            "attempt": 2,
            "retriesRemaining": 2,
            "requestedAt": None,
            "requestId": None,
            "detail": None,
        }
        assert (jobs_dir / "cancelled" / "requests" / "retry.json").is_file()


@pytest.mark.reliability
def test_twenty_concurrent_retries_of_one_job_accept_exactly_one(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    with live_server(jobs_dir) as server:
        known(server, "job")
        start = threading.Barrier(20)
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def retry() -> None:
            start.wait()
            answer = httpx.post(f"{server.url}/api/jobs/job/retry", timeout=10)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=retry) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [202] + [400] * 19
        for refused in (a for a in answers if a.status_code == 400):
            assert 1 <= int(refused.headers["retry-after"]) <= 5
            assert refused.json()["retriesRemaining"] == 2
            assert refused.headers["content-type"] == "application/problem+json"
        assert retries(server, "accepted") == 1
        assert retries(server, "refused") == 19
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'aura_job_retries_total{result="accepted"} 1.0' in metrics

    with live_server(jobs_dir) as restarted:
        known(restarted, "job")
        again = httpx.post(f"{restarted.url}/api/jobs/job/retry")
        assert again.status_code == 400 and "retry-after" in again.headers  # the backoff outlived the restart
        explained = httpx.get(f"{restarted.url}/api/jobs/job/explain").json()
        assert len(explained["retryHistory"]) == 1


@pytest.mark.reliability
def test_two_sidecars_on_one_jobs_dir_accept_exactly_one_of_their_concurrent_retries(jobs_dir: Path) -> None:
    # Two sidecars share nothing but the files (their in-process locks are their own): the retry history's
    # file lock is what keeps them from both accepting.
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    with live_server(jobs_dir) as first, live_server(jobs_dir) as second:
        known(first, "job")
        known(second, "job")
        start = threading.Barrier(20)
        statuses: list[int] = []
        lock = threading.Lock()

        def retry(server: LiveServer) -> None:
            start.wait()
            answer = httpx.post(f"{server.url}/api/jobs/job/retry", timeout=10)
            with lock:
                statuses.append(answer.status_code)

        threads = [threading.Thread(target=retry, args=(server,)) for server in [first, second] * 10]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert sorted(statuses) == [202] + [400] * 19
        assert (retries(first, "accepted") or 0) + (retries(second, "accepted") or 0) == 1
        assert len(json.loads((jobs_dir / "job" / "monitor" / "retries.json").read_text())["retries"]) == 1


class FakeAura:
    """Answers POST /api/jobs/{id}/retry|cancel as Aura's API documents it (202, 400 problem, 404 problem)."""

    def __init__(self, running: set[str], failed: set[str]) -> None:
        self.running, self.failed = running, failed
        self.received: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake.received.append(self.path)
                parts = self.path.strip("/").split("/")
                job_id, action = parts[2], parts[3]
                if job_id not in fake.running | fake.failed:
                    self._answer(404, {"title": "Not Found", "status": 404, "detail": f"Job {job_id} not found"})
                elif action == "cancel" and job_id not in fake.running:
                    detail = f"Job {job_id} is not running and cannot be cancelled"
                    self._answer(400, {"title": "Invalid operation", "status": 400, "detail": detail})
                elif action == "retry" and job_id not in fake.failed:
                    detail = "Only failed jobs can be retried"
                    self._answer(400, {"title": "Invalid operation", "status": 400, "detail": detail})
                else:
                    self._answer(202, {"jobId": job_id, "correlationId": "corr-1", "message": f"{action} accepted"})

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps({**body, "correlationId": "corr-1"}).encode()
                self.send_response(status)
                kind = "application/json" if status < 400 else "application/problem+json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @contextmanager
    def serving(self) -> Iterator[FakeAura]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def test_aura_jobs_are_forwarded_to_the_upstream_api_and_its_answers_mapped(jobs_dir: Path) -> None:
    now = time.time()
    AuraJob(jobs_dir, id="aura-running", status=RUNNING, created=now - 60, started=now - 50).write()
    AuraJob(jobs_dir, id="aura-stale", status=RUNNING, created=now - 60, started=now - 50).write()
    AuraJob(jobs_dir, id="aura-ghost", status=RUNNING, created=now - 60, started=now - 50).write()
    AuraJob(jobs_dir, id="aura-failed", status=FAILED, created=now - 60, extra={"ErrorMessage": "boom"}).write()
    AuraJob(jobs_dir, id="aura-done", status=DONE, created=now - 60, percent=100, stage="Complete").write()
    write_native(jobs_dir, "native", status="running")
    aura = FakeAura(running={"aura-running"}, failed={"aura-failed", "aura-stale"})
    with aura.serving(), live_server(jobs_dir, upstream=aura.url) as server:
        known(server, "aura-running", "aura-stale", "aura-ghost", "aura-failed", "aura-done", "native")
        cancel = httpx.post(f"{server.url}/api/jobs/aura-running/cancel")
        assert cancel.status_code == 202 and cancel.json()["channel"] == "upstream"
        assert cancel.json()["requestId"] == "corr-1"
        stale = httpx.post(f"{server.url}/api/jobs/aura-stale/cancel")
        assert stale.status_code == 409 and "not running" in stale.json()["detail"]
        ghost = httpx.post(f"{server.url}/api/jobs/aura-ghost/cancel")
        assert ghost.status_code == 404 and "upstream" in ghost.json()["detail"]
        retry = httpx.post(f"{server.url}/api/jobs/aura-failed/retry")
        assert retry.status_code == 202 and retry.json()["retriesRemaining"] == 2
        assert httpx.post(f"{server.url}/api/jobs/aura-done/cancel").status_code == 409  # refused here, not sent
        assert httpx.post(f"{server.url}/api/jobs/native/cancel").json()["channel"] == "request-file"
        assert aura.received == [
            "/api/jobs/aura-running/cancel",
            "/api/jobs/aura-stale/cancel",
            "/api/jobs/aura-ghost/cancel",
            "/api/jobs/aura-failed/retry",
        ]


def test_an_unreachable_upstream_is_a_502_problem_and_costs_no_retry(jobs_dir: Path) -> None:
    AuraJob(jobs_dir, id="aura-failed", status=FAILED, created=time.time() - 60).write()
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()
    with live_server(jobs_dir, upstream=url, upstream_timeout=2) as server:
        known(server, "aura-failed")
        for _ in range(2):
            answer = httpx.post(f"{server.url}/api/jobs/aura-failed/retry")
            assert answer.status_code == 502 and "unreachable" in answer.json()["detail"]
        assert retries(server, "refused") == 2
        assert (
            not (jobs_dir / "aura-failed" / "monitor" / "retries.json").exists()
            or json.loads((jobs_dir / "aura-failed" / "monitor" / "retries.json").read_text())["retries"] == []
        )


def test_aura_jobs_without_an_upstream_are_a_conflict_that_says_how_to_forward(jobs_dir: Path) -> None:
    AuraJob(jobs_dir, id="aura-running", status=RUNNING, created=time.time() - 60).write()
    with live_server(jobs_dir) as server:
        known(server, "aura-running")
        answer = httpx.post(f"{server.url}/api/jobs/aura-running/cancel")
        assert answer.status_code == 409 and "--upstream" in answer.json()["detail"]


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the reference worker renders with ffmpeg")


@contextmanager
def worker(jobs_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aura_monitor", "worker", "--jobs-dir", str(jobs_dir), "--poll-interval", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@needs_ffmpeg
def test_cancelling_a_render_of_the_reference_worker_ends_it_cancelled_and_stops_ffmpeg(jobs_dir: Path) -> None:
    job_id = enqueue_job(jobs_dir, RenderRequest(duration_s=30, realtime=True), clock=SystemClock(), job_id="render")
    with live_server(jobs_dir) as server, worker(jobs_dir):
        known(server, job_id)
        stream = SseClient(server.port, f"/api/jobs/{job_id}/events")
        stream.wait(
            lambda events: any(e.name == "step-status" and e.data["step"] == "Render" for e in events),
            timeout=60,
            what="the render stage",
        )
        wait_for(lambda: _alive(_encoder_pid(server, job_id)), timeout=STARTUP_S, what="the render's ffmpeg to run")
        encoder = _encoder_pid(server, job_id)
        answer = httpx.post(f"{server.url}/api/jobs/{job_id}/cancel")
        assert answer.status_code == 202
        cancelled = stream.wait_for_event("job-cancelled", timeout=30)
        stream.wait_ended()
        assert cancelled.data["status"] == "cancelled"
        wait_for(
            lambda: not _alive(encoder) and not _alive(_encoder_pid(server, job_id)), timeout=HANG_S, what="no ffmpeg"
        )
        # Honoured, then removed: the process writes the cancelled record first and only then deletes the
        # request (a crash between leaves a request the worker ignores), so the event can come first.
        request = jobs_dir / job_id / "requests" / "cancel.json"
        wait_for(lambda: not request.exists(), timeout=HANG_S, what="the honoured cancel request to be removed")
        assert httpx.post(f"{server.url}/api/jobs/{job_id}/cancel").status_code == 409


@needs_ffmpeg
def test_retrying_a_failed_job_runs_it_again_under_the_same_id_as_its_next_attempt(jobs_dir: Path) -> None:
    clock = SystemClock()
    job_id = enqueue_job(jobs_dir, RenderRequest(duration_s=1), clock=clock, job_id="again")
    reporter = JobReporter.load(jobs_dir, job_id, clock=clock)
    reporter.start()
    reporter.fail("E304-FFMPEG_RUNTIME", "ffmpeg exited with code 1", stage="Script")
    with live_server(jobs_dir) as server:
        known(server, job_id)
        every = SseClient(server.port, "/api/events")
        every.wait_for_event("connected")
        with worker(jobs_dir):
            answer = httpx.post(f"{server.url}/api/jobs/{job_id}/retry")
            assert answer.status_code == 202 and answer.json()["attempt"] == 2
            done = every.wait_for_event("job-completed", timeout=60, job_id=job_id)
        assert done.data["attempt"] == 2 and done.data["outputPath"]
        statuses = [e.data["status"] for e in every.events if e.name == "job-status"]
        assert statuses[:2] == ["queued", "running"] and statuses[-1] == "completed"
        every.close()


def _encoder_pid(server: LiveServer, job_id: str) -> int | None:
    state = server.sidecar.tracker.get(job_id)
    return state.record.encoder_pid if state is not None and state.record is not None else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
