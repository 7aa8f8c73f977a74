"""Real OTLP trace receivers on loopback: OTLP/HTTP (protobuf over POST) and OTLP/gRPC (the TraceService).

Both decode every ExportTraceServiceRequest with `opentelemetry-proto` and keep the spans with their
resource, so tests assert on what a collector would have received, never on an in-memory exporter.
"""

from __future__ import annotations

import gzip
import threading
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from . import HANG_S, wait_for

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass
class ReceivedSpan:
    """One span as the receiver decoded it; ids are lowercase hex, times Unix nanoseconds."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start: int
    end: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    status_code: int
    status_message: str
    resource: dict[str, Any]

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class _Collected:
    """The spans and request metadata a receiver got, shared between its server threads."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def collect(self, path: str, headers: dict[str, str], request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.paths.append(path)
            self.headers.append(headers)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                start=span.start_time_unix_nano,
                                end=span.end_time_unix_nano,
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                                status_code=span.status.code,
                                status_message=span.status.message,
                                resource=resource,
                            )
                        )

    def named(self, name: str) -> list[ReceivedSpan]:
        with self._lock:
            return [span for span in self.spans if span.name == name]

    def all(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for_span(self, name: str, timeout: float = HANG_S) -> ReceivedSpan:
        """The first span called `name`, waiting for the exporter's batch to arrive."""
        return wait_for(lambda: next(iter(self.named(name)), None), timeout, f"an exported {name!r} span")


class OtlpHttpReceiver(_Collected):
    """An OTLP/HTTP trace endpoint (`url` is the base: the exporter appends /v1/traces)."""

    def __init__(self) -> None:
        super().__init__()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver.collect(self.path, headers, ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # assertions say what went wrong; the access log is noise

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="otlp-http-receiver", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class OtlpGrpcReceiver(_Collected):
    """An OTLP/gRPC collector: a grpcio server implementing opentelemetry-proto's TraceService."""

    def __init__(self) -> None:
        super().__init__()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
                metadata = {key: str(value) for key, value in context.invocation_metadata()}
                receiver.collect("opentelemetry.proto.collector.trace.v1.TraceService/Export", metadata, request)
                return ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.stop(grace=None).wait(timeout=5)


def clear_otel_environment(monkeypatch: Any) -> None:
    """Unset every OTEL_* variable, so a test sees only the configuration it sets (pytest's monkeypatch)."""
    import os

    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
