"""Online: a live sidecar diagnoses each stall, and the verdict becomes the metric's reason and the job's verdict."""

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
from tests.support.aura_writer import net_time

PROVIDER_LOGS = [f"TTS provider answered HTTP 429 Too Many Requests; retry {i}" for i in range(1, 6)]


@pytest.fixture
def client(jobs_dir: Path) -> Iterator[TestClient]:
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir, stall_threshold=0.5, rediagnose_interval=0.2))
    with TestClient(create_app(sidecar), base_url="http://localhost") as c:
        yield c


def test_a_stall_is_diagnosed_and_the_verdict_becomes_the_stall_reason_series(
    client: TestClient, jobs_dir: Path
) -> None:
    write_native(
        jobs_dir, "tts-429", stage="TTS", percent=30.0, lastProgressAt=net_time(time.time()), logs=PROVIDER_LOGS
    )
    wait_for(
        lambda: client.get("/api/jobs/tts-429").json().get("verdict") == "upstream_errors",
        timeout=HANG_S,
        what="verdict refined by the diagnosis",
    )
    metrics = client.get("/metrics").text
    assert sample(metrics, "aura_job_stalled", job_id="tts-429", stage="tts") == 1
    assert sample(metrics, "aura_job_stall_reason", job_id="tts-429", reason="upstream_errors") == 1
    assert sample(metrics, "aura_job_verdicts_total", verdict="upstream_errors") == 1


def test_the_explain_endpoint_uses_the_history_the_sidecar_observed(client: TestClient, jobs_dir: Path) -> None:
    write_native(jobs_dir, "observed", stage="Images", percent=60.0, lastProgressAt=net_time(time.time()))
    wait_for(lambda: client.get("/api/jobs/observed").status_code == 200, what="job seen")
    write_native(jobs_dir, "observed", stage="Images", percent=61.0, revision=2)
    wait_for(lambda: client.get("/api/jobs/observed").json()["stalled"], timeout=HANG_S, what="stall")
    body = client.get("/api/jobs/observed/explain").json()
    assert body["observedBySidecar"] is True and body["verdict"] == "no_progress"
    kinds = [entry["kind"] for entry in body["timeline"]]
    assert kinds[0] == "discovered" and "stalled" in kinds
    write_native(jobs_dir, "observed", stage="Images", percent=62.0, revision=3)
    wait_for(lambda: client.get("/api/jobs/observed/explain").json()["verdict"] == "healthy", what="recovered")
    assert client.get("/api/jobs/observed").json()["verdict"] is None


def test_explain_answers_bad_ids_with_problems(client: TestClient) -> None:
    assert client.get("/api/jobs/no-such/explain").status_code == 404
    response = client.get("/api/jobs/.bad/explain")
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"


def test_stalls_and_explain_calls_become_spans_in_the_jobs_trace(jobs_dir: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir, stall_threshold=0.3), tracer_provider=provider)
    with TestClient(create_app(sidecar), base_url="http://localhost") as c:
        write_native(
            jobs_dir,
            "traced",
            stage="Images",
            percent=60.0,
            lastProgressAt=net_time(time.time()),
            traceparent=f"00-{trace_id}-b7ad6b7169203331-03",
        )
        wait_for(lambda: c.get("/api/jobs/traced").json().get("stalled"), what="stall")
        assert c.get("/api/jobs/traced/explain").status_code == 200
        write_native(
            jobs_dir,
            "traced",
            stage="Images",
            percent=61.0,
            revision=2,
            traceparent=f"00-{trace_id}-b7ad6b7169203331-03",
        )
        wait_for(lambda: not c.get("/api/jobs/traced").json()["stalled"], what="recovery")
    spans = exporter.get_finished_spans()
    stall = next(s for s in spans if s.name == "stall")
    assert f"{stall.context.trace_id:032x}" == trace_id  # the stall sits in the pipeline's own trace
    explain = next(s for s in spans if s.name == "explain")
    assert explain.attributes and explain.attributes.get("aura.verdict") == "no_progress"
    assert any(f"{link.context.trace_id:032x}" == trace_id for link in explain.links)  # an on-demand call links
