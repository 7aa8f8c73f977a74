"""The reporter SDK's tracing: the same OTEL_*-configured provider as the sidecar, to real OTLP receivers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from aura_monitor.clock import SystemClock
from aura_monitor.exceptions import ConfigError, JobCancelled
from aura_monitor.reporter import JobReporter, JobRun, tracer_provider_from_env
from tests.support.otlp import STATUS_ERROR, OtlpGrpcReceiver, OtlpHttpReceiver, clear_otel_environment


@pytest.fixture(autouse=True)
def otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture
def collector() -> Iterator[OtlpHttpReceiver]:
    running = OtlpHttpReceiver()
    yield running
    running.close()


def test_tracing_exports_over_otlp_http_to_the_configured_endpoint(
    collector: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "render-farm")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    provider = tracer_provider_from_env()
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "render-farm"
    assert collector.paths == ["/v1/traces"]
    [job] = collector.named("job")
    assert job.service == "render-farm"


def test_tracing_exports_nothing_when_the_exporter_is_none(
    collector: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    provider = tracer_provider_from_env()
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "aura-pipeline"
    assert collector.paths == []


def test_tracing_can_print_spans_to_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "farm")
    out = io.StringIO()
    provider = tracer_provider_from_env(console=out)
    provider.get_tracer("test").start_span("stage-span").end()
    provider.shutdown()

    assert '"name": "stage-span"' in out.getvalue()


def test_an_unknown_traces_exporter_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="zipkin"):
        tracer_provider_from_env()


def test_a_cancelled_job_run_reaches_a_grpc_collector_as_one_trace_in_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = OtlpGrpcReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
        provider = tracer_provider_from_env()
        clock = SystemClock()
        reporter = JobReporter.create(tmp_path, "job-7", clock=clock)
        with (
            pytest.raises(JobCancelled),
            JobRun(reporter, clock=clock, tracer_provider=provider) as run,
            run.stage("Render"),
        ):
            raise JobCancelled("cancelled on request by ops")
        provider.shutdown()

        job, render = receiver.named("job") + receiver.named("Render")
        assert render.trace_id == job.trace_id and render.parent_span_id == job.span_id
        assert (job.status_code, job.status_message) == (STATUS_ERROR, "cancelled: cancelled on request by ops")
        assert render.status_code == STATUS_ERROR
        assert render.attributes["aura.job.attempt"] == job.attributes["aura.job.attempt"] == 1
        assert (job.service, job.resource["deployment.environment.name"]) == ("aura-pipeline", "staging")
        assert job.trace_id in str(reporter.traceparent)
    finally:
        receiver.close()
