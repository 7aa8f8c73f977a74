"""The REST API over a real sidecar watching real files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aura_monitor.api.app import create_app
from aura_monitor.config import load_settings
from aura_monitor.sidecar import Sidecar
from tests.support import HANG_S, sample, wait_for, write_native
from tests.support.aura_writer import DONE, QUEUED, RUNNING, AuraJob, net_time


@pytest.fixture
def client(jobs_dir: Path) -> Iterator[TestClient]:
    now = time.time()
    stalled = AuraJob(jobs_dir, id="tts-stalled", status=RUNNING, created=now - 300, started=now - 290)
    stalled.progress(now - 50, "TTS", 40)
    stalled.write()
    finalizing = AuraJob(jobs_dir, id="render-95", status=RUNNING, created=now - 200, started=now - 190)
    finalizing.progress(now - 120, "Rendering", 95)
    finalizing.write()
    done = AuraJob(
        jobs_dir,
        id="done",
        status=DONE,
        created=now - 100,
        percent=100,
        stage="Complete",
        extra={"CompletedUtc": net_time(now - 10), "OutputPath": "/videos/done.mp4"},
    )
    done.write()
    AuraJob(jobs_dir, id="waiting", status=QUEUED, created=now - 5).write()
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir))
    with TestClient(create_app(sidecar), base_url="http://localhost") as c:
        wait_for(lambda: len(sidecar.tracker) == 4, what="four jobs")
        yield c


def test_it_lists_jobs_newest_first_with_the_contract_fields(client: TestClient) -> None:
    body = client.get("/api/jobs").json()
    assert body["count"] == 4 == body["total"]
    assert [j["id"] for j in body["jobs"]] == ["waiting", "done", "render-95", "tts-stalled"]
    required = {
        "id",
        "status",
        "stage",
        "percent",
        "stalled",
        "secondsSinceProgress",
        "thresholdSeconds",
        "createdAt",
        "startedAt",
        "completedAt",
        "outputPath",
        "errorMessage",
        "verdict",
    }
    assert all(required <= set(job) for job in body["jobs"])


def test_a_tts_job_50_s_without_progress_is_stalled_and_a_95_percent_job_at_120_s_is_not(
    client: TestClient,
) -> None:
    stalled = client.get("/api/jobs/tts-stalled").json()
    assert stalled["stalled"] is True and stalled["thresholdSeconds"] == 45
    assert stalled["verdict"] == "no_progress" and stalled["secondsSinceProgress"] >= 50
    finalizing = client.get("/api/jobs/render-95").json()
    assert finalizing["stalled"] is False and finalizing["thresholdSeconds"] == 180
    assert finalizing["thresholdKind"] == "finalizing"


def test_filters_narrow_the_list(client: TestClient) -> None:
    assert [j["id"] for j in client.get("/api/jobs?stalled=true").json()["jobs"]] == ["tts-stalled"]
    assert [j["id"] for j in client.get("/api/jobs?status=completed,queued").json()["jobs"]] == [
        "waiting",
        "done",
    ]
    assert [j["id"] for j in client.get("/api/jobs?stage=voice").json()["jobs"]] == []
    assert [j["id"] for j in client.get("/api/jobs?stage=tts").json()["jobs"]] == ["tts-stalled"]
    page = client.get("/api/jobs?limit=1").json()
    assert (page["count"], page["total"]) == (1, 4)


def test_progress_reports_steps_elapsed_and_eta(client: TestClient) -> None:
    body = client.get("/api/jobs/render-95/progress").json()
    assert body["percent"] == 95 and body["elapsedSeconds"] >= 190
    steps = {s["name"]: s["status"] for s in body["steps"]}
    assert steps["TTS"] == "completed" and steps["Render"] == "running" and steps["Finalize"] == "pending"


def test_the_queue_uses_auras_words_and_counts(client: TestClient) -> None:
    body = client.get("/api/queue?status=pending").json()
    assert [j["id"] for j in body["jobs"]] == ["waiting"]
    assert body["stats"] == {
        "total": 4,
        "pending": 1,
        "running": 2,
        "completed": 1,
        "failed": 0,
        "canceled": 0,
    }


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/jobs/..", 404),  # clients normalize the dot segment away: no route
        ("/api/jobs/.hidden", 400),
        ("/api/jobs/a..b", 400),
        ("/api/jobs/" + "x" * 200, 400),
        ("/api/jobs/" + "x" * 300, 400),
        ("/api/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
        ("/api/jobs/..%2F..%2Fetc", 404),
        ("/api/jobs/no-such-job", 404),
        ("/api/jobs/no-such-job/progress", 404),
        ("/api/jobs?status=stuck", 400),
        ("/api/jobs?limit=0", 400),
        ("/api/jobs?limit=1001", 400),
        ("/api/jobs?limit=ten", 400),
        ("/api/jobs?stalled=maybe", 400),
        ("/api/queue?limit=201", 400),
        ("/api/queue?status=done", 400),
        ("/nowhere", 404),
    ],
)
def test_bad_input_gets_a_problem_never_a_500(client: TestClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"] and body["title"]


def test_health_readiness_metrics_and_openapi(client: TestClient) -> None:
    node = client.app.state.sidecar.settings.node  # type: ignore[attr-defined]
    assert client.get("/healthz").json() == {"status": "ok", "node": node}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["watcherAlive"] is True
    metrics = client.get("/metrics", follow_redirects=False)
    assert metrics.status_code == 200
    assert sample(metrics.text, "aura_job_stalled", job_id="tts-stalled", stage="tts") == 1
    assert client.get("/docs").status_code == 200
    assert "/api/jobs/{job_id}" in client.get("/openapi.json").json()["paths"]


def test_readiness_is_503_while_the_jobs_dir_is_missing(tmp_path: Path) -> None:
    sidecar = Sidecar(load_settings(jobs_dir=tmp_path / "absent"))
    with TestClient(create_app(sidecar), base_url="http://localhost") as c:
        response = c.get("/readyz")
        assert response.status_code == 503
        assert "does not exist" in response.json()["reasons"][0]


def test_an_in_place_rewrite_shows_in_the_api(client: TestClient, jobs_dir: Path) -> None:
    job = AuraJob(jobs_dir, id="tts-stalled", status=RUNNING, created=time.time() - 300)
    job.progress(time.time(), "TTS", 41)
    job.write()
    # That it shows, not how fast: the write-to-event latency is bench/'s (sse_latency_p99_ms).
    wait_for(lambda: client.get("/api/jobs/tts-stalled").json()["percent"] == 41, timeout=HANG_S, what="rewrite in API")
    assert client.get("/api/jobs/tts-stalled").json()["stalled"] is False


def test_a_job_whose_file_was_never_readable_is_a_404_that_says_why(client: TestClient, jobs_dir: Path) -> None:
    (jobs_dir / "broken").mkdir()
    (jobs_dir / "broken" / "job.json").write_text("{nope")
    app_sidecar: Sidecar = client.app.state.sidecar  # type: ignore[attr-defined]
    wait_for(lambda: app_sidecar.tracker.get("broken") is not None, what="broken job noticed")
    body = client.get("/api/jobs/broken").json()
    assert body["status"] == 404 and "never been readable" in body["detail"]


def test_native_records_are_served_the_same_way(client: TestClient, jobs_dir: Path) -> None:
    write_native(jobs_dir, "native-1", stage="Render", percent=81.0, attempt=2)
    wait_for(lambda: client.get("/api/jobs/native-1").status_code == 200, what="native job")
    body = client.get("/api/jobs/native-1").json()
    assert (body["format"], body["attempt"], body["percent"]) == ("native", 2, 81.0)
