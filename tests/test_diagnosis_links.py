"""Explain remediation and every job's links are absolute URLs built from --external-url (DESIGN 2.8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from aura_monitor.config import load_settings
from aura_monitor.diagnosis import explain_offline
from tests.support import HANG_S, wait_for, write_native
from tests.support.board import finished_job, stuck_on_provider
from tests.support.cli import run_in_pty, run_piped
from tests.support.live_server import Received, SseClient, live_server

EXTERNAL = "http://example-node:9999"


def expected_links(base: str, job_id: str) -> dict[str, str]:
    api = f"{base}/api/jobs/{job_id}"
    return {
        "job": api,
        "explain": f"{api}/explain",
        "events": f"{api}/events",
        "retry": f"{api}/retry",
        "cancel": f"{api}/cancel",
        "board": f"{base}/#job={job_id}",
    }


def relative_api_paths(data: Any) -> list[str]:
    """Every string in an event that names the jobs API other than through EXTERNAL (a path that opens nothing)."""
    text = json.dumps(data).replace(f"{EXTERNAL}/api/jobs/", "")
    return [part for part in text.split('"') if "/api/jobs/" in part]


def first(client: SseClient, name: str, job_id: str) -> Received:
    return next(e for e in client.events if e.name == name and e.data.get("jobId") == job_id)


def remediation(body: dict[str, Any]) -> list[str]:
    return [step for finding in body["findings"] for step in finding["remediation"]]


def requests_in(body: dict[str, Any]) -> list[str]:
    """The remediation steps that tell the reader to send a request to the sidecar."""
    return [step for step in remediation(body) if "POST " in step or "GET " in step]


def test_a_served_explain_and_job_link_through_the_external_url_never_the_scrape_address(jobs_dir: Path) -> None:
    stuck_on_provider(jobs_dir, "tts-stuck", stuck_for=130)
    finished_job(jobs_dir, "went-wrong", "failed", age=60, took=30, errorMessage="ffmpeg exited with code 1")
    (jobs_dir / "half-written").mkdir()
    (jobs_dir / "half-written" / "job.json").write_text('{"status": "runn')  # never readable
    # Loopback Hosts always pass the Host guard, so the test reaches the sidecar at 127.0.0.1 (its scrape address).
    with live_server(jobs_dir, external_url=EXTERNAL + "/") as server, httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/api/jobs/went-wrong").status_code == 200, timeout=HANG_S, what="the jobs seen")
        wait_for(lambda: "never been readable" in http.get("/api/jobs/half-written").text, timeout=HANG_S, what="it")
        for job_id in ("tts-stuck", "went-wrong"):
            body = http.get(f"/api/jobs/{job_id}/explain", timeout=HANG_S).json()
            assert body["links"] == expected_links(EXTERNAL, job_id)
            steps = requests_in(body)
            assert steps, f"{job_id}: no remediation step names a request: {remediation(body)}"
            assert all(f"POST {EXTERNAL}/api/jobs/{job_id}/" in s or f"GET {EXTERNAL}/" in s for s in steps), steps
            assert not any("POST /api" in s or "GET /api" in s for s in remediation(body))
            assert server.url not in json.dumps(body) and "127.0.0.1" not in json.dumps(body["links"])
            assert "Authorization" not in json.dumps(body)  # no token configured: no header to mention

            assert http.get(f"/api/jobs/{job_id}").json()["links"] == expected_links(EXTERNAL, job_id)
        listed = {job["id"]: job["links"] for job in http.get("/api/jobs").json()["jobs"]}
        assert listed["tts-stuck"] == expected_links(EXTERNAL, "tts-stuck")
        queued = {item["jobId"]: item["links"] for item in http.get("/api/queue").json()["jobs"]}
        assert queued["went-wrong"] == expected_links(EXTERNAL, "went-wrong")

        # Problems that point at the diagnosis point at it through the external URL too.
        not_failed = http.get("/api/jobs/tts-stuck/failure-details")
        assert not_failed.status_code == 400
        assert f"GET {EXTERNAL}/api/jobs/tts-stuck/explain" in not_failed.json()["detail"]
        failure = http.get("/api/jobs/went-wrong/failure-details").json()
        assert failure["explain"] == f"{EXTERNAL}/api/jobs/went-wrong/explain"
        unreadable = http.get("/api/jobs/half-written")
        assert unreadable.status_code == 404
        assert f"GET {EXTERNAL}/api/jobs/half-written/explain" in unreadable.json()["detail"]

        # The links work: the explain link, asked of this sidecar, is the same job's diagnosis.
        explain_path = body["links"]["explain"].removeprefix(EXTERNAL)
        assert http.get(explain_path, timeout=HANG_S).json()["jobId"] == "went-wrong"


def test_remediation_says_the_token_header_is_needed_and_never_prints_the_token(jobs_dir: Path) -> None:
    finished_job(jobs_dir, "went-wrong", "failed", age=60, took=30, errorMessage="ffmpeg exited with code 1")
    settings = load_settings(jobs_dir=jobs_dir, external_url=EXTERNAL, token="s3cret-do-not-show")
    body = explain_offline(settings, "went-wrong").body
    posts = [step for step in remediation(body) if "POST " in step]
    assert posts and all("Authorization: Bearer" in step and "--token" in step for step in posts), posts
    assert "s3cret-do-not-show" not in json.dumps(body)


def test_offline_explain_uses_the_configured_external_url_else_the_sidecars_own_address(jobs_dir: Path) -> None:
    stuck_on_provider(jobs_dir, "tts-stuck", stuck_for=130)
    configured = explain_offline(load_settings(jobs_dir=jobs_dir, external_url=EXTERNAL), "tts-stuck").body
    assert configured["links"] == expected_links(EXTERNAL, "tts-stuck")
    assert all(EXTERNAL in step for step in requests_in(configured))

    default = explain_offline(load_settings(jobs_dir=jobs_dir, host="127.0.0.1", port=9465), "tts-stuck").body
    assert default["links"] == expected_links("http://127.0.0.1:9465", "tts-stuck")

    # The CLI, piped as a script would run it, takes --external-url like `serve` does.
    done = run_piped("explain", "tts-stuck", "--jobs-dir", str(jobs_dir), "--external-url", EXTERNAL, "-o", "json")
    assert done.code == 0, done.err
    piped = json.loads(done.out)
    assert piped["links"] == expected_links(EXTERNAL, "tts-stuck")
    assert f"POST {EXTERNAL}/api/jobs/tts-stuck/retry" in " ".join(remediation(piped))
    report = run_piped("explain", "tts-stuck", "--jobs-dir", str(jobs_dir), "--external-url", EXTERNAL)
    assert report.code == 0, report.err
    assert f"On the board: {EXTERNAL}/#job=tts-stuck" in report.out.splitlines()
    # On a terminal too, and never cut across lines (a cut URL does not open).
    shown = run_in_pty("explain", "tts-stuck", "--jobs-dir", str(jobs_dir), "--external-url", EXTERNAL, columns=40)
    assert shown.code == 0, shown.err
    assert f"On the board: {EXTERNAL}/#job=tts-stuck" in shown.text.splitlines()


def test_sse_snapshots_status_and_terminal_events_carry_the_same_absolute_links_as_rest(jobs_dir: Path) -> None:
    write_native(jobs_dir, "render-1", status="running", stage="Render", percent=40, revision=1)
    links = expected_links(EXTERNAL, "render-1")
    with live_server(jobs_dir, external_url=EXTERNAL + "/") as server, httpx.Client(base_url=server.url) as http:
        wait_for(lambda: http.get("/api/jobs/render-1").status_code == 200, timeout=HANG_S, what="the job seen")
        every = SseClient(server.port, "/api/events")
        one = SseClient(server.port, "/api/jobs/render-1/events")
        aura = SseClient(server.port, "/api/jobs/render-1/progress/stream")
        for client in (every, one, aura):
            client.wait_for_event("connected", timeout=HANG_S)
        assert {job["id"]: job["links"] for job in every.events[0].data["jobs"]} == {"render-1": links}
        assert one.events[0].data["job"]["links"] == links
        assert aura.events[0].data["job"]["links"] == links
        assert http.get("/api/jobs/render-1").json()["links"] == links  # the very same links as REST

        # Failed with no suggestion of its own: the generic remediation names the explain and retry URLs.
        error = {"message": "ffmpeg exited with code 1"}
        write_native(jobs_dir, "render-1", status="failed", stage="Render", percent=40, revision=2, error=error)
        one.wait_ended()
        aura.wait_ended()
        every.wait_for_event("job-failed", job_id="render-1")
        for client in (every, one):
            assert first(client, "job-status", "render-1").data["job"]["links"] == links
            failed = first(client, "job-failed", "render-1").data
            assert failed["links"] == links
            steps = failed["errors"][0]["remediation"]
            assert f"GET {EXTERNAL}/api/jobs/render-1/explain" in steps[0], steps
            assert f"POST {EXTERNAL}/api/jobs/render-1/retry" in steps[1], steps
            assert "Authorization" not in json.dumps(failed)  # no token configured: no header to mention
        # Aura's stream keeps Aura's shapes: its job object (in `connected`) has the links, its ending is Aura's.
        assert aura.names()[-1] == "job-completed" and aura.events[-1].data["status"] == "failed"
        for client in (every, one, aura):
            for event in client.events:
                assert not relative_api_paths(event.data), (client.path, event.name, relative_api_paths(event.data))

        # A client arriving after the end gets the kept (lean) terminal event again, links rebuilt.
        late = SseClient(server.port, "/api/jobs/render-1/events")
        late.wait_ended()
        assert late.names() == ["connected", "job-failed"]
        assert late.events[-1].data["links"] == links and late.events[0].data["job"]["links"] == links


def test_a_job_found_failed_at_start_streams_remediation_naming_the_token_header_never_the_token(
    jobs_dir: Path,
) -> None:
    finished_job(jobs_dir, "went-wrong", "failed", age=60, took=30, errorMessage="ffmpeg exited with code 1")
    with live_server(jobs_dir, external_url=EXTERNAL, token="s3cret-do-not-show") as server:
        stream = SseClient(server.port, "/api/jobs/went-wrong/events")
        stream.wait_ended()
        assert stream.names() == ["connected", "job-failed"]
        failed = stream.events[-1].data
        assert failed["links"] == expected_links(EXTERNAL, "went-wrong")
        retry = failed["errors"][0]["remediation"][1]
        assert f"POST {EXTERNAL}/api/jobs/went-wrong/retry" in retry and "Authorization: Bearer" in retry, retry
        assert "s3cret-do-not-show" not in json.dumps([e.data for e in stream.events])


def test_a_refused_stream_sends_the_reader_to_the_jobs_list_through_the_external_url(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(jobs_dir, external_url=EXTERNAL, max_streams=1) as server:
        held = SseClient(server.port, "/api/events")
        try:
            held.wait_for_event("connected")
            refused = httpx.get(f"{server.url}/api/jobs/job/events", timeout=HANG_S)
            assert refused.status_code == 503
            assert f"poll GET {EXTERNAL}/api/jobs" in refused.json()["detail"], refused.json()["detail"]
        finally:
            held.close()
