"""OpenTelemetry set up from the OTEL_* variables, read by our own code."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aura_monitor.exceptions import ConfigError
from aura_monitor.reporter import tracer_provider_from_env


class _Collector:
    """A real HTTP endpoint counting OTLP trace exports."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                collector.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    running = _Collector()
    yield running
    running.close()


def test_tracing_exports_over_otlp_http_to_the_configured_endpoint(collector: _Collector) -> None:
    provider = tracer_provider_from_env(
        {"OTEL_SERVICE_NAME": "render-farm", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    )
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "render-farm"
    assert collector.paths == ["/v1/traces"]


def test_tracing_exports_nothing_when_the_exporter_is_none(collector: _Collector) -> None:
    provider = tracer_provider_from_env(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    )
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "aura-pipeline"
    assert collector.paths == []


def test_tracing_can_print_spans_to_the_console() -> None:
    out = io.StringIO()
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "farm"}, console=out)
    provider.get_tracer("test").start_span("stage-span").end()
    provider.shutdown()

    assert '"name": "stage-span"' in out.getvalue()


def test_an_unknown_traces_exporter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="zipkin"):
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
