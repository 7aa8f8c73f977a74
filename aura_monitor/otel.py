"""OpenTelemetry set-up through the SDK's own configuration, and the job's W3C traceparent.

The SDK and its exporters read most OTEL_* variables themselves: `Resource.create()` reads
OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; `TracerProvider` reads OTEL_SDK_DISABLED, the sampler and
the span limits; `BatchSpanProcessor` reads OTEL_BSP_*; each OTLP exporter reads its endpoint, headers,
timeout, compression and certificates. Only the auto-configurator (`opentelemetry-instrument`) reads
OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, so those two choices are made here.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from typing import TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from .exceptions import ConfigError

DEFAULT_SERVICE_NAME = "aura-pipeline"
PROTOCOLS = ("http/protobuf", "grpc")
# The spec's default; the Python auto-configurator alone defaults to grpc.
DEFAULT_PROTOCOL = "http/protobuf"
EXPORTER_ENTRY_POINTS = "opentelemetry_traces_exporter"

_PROPAGATOR = TraceContextTextMapPropagator()


def sdk_disabled() -> bool:
    """OTEL_SDK_DISABLED=true: the spec's switch for a no-op SDK (read as the SDK's TracerProvider does)."""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def resource_from_env(default_service: str) -> Resource:
    """`Resource.create()` (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, the SDK's detectors), our defaults
    filling only what the environment leaves unset (the service name would otherwise be `unknown_service`)."""
    from_env = OTELResourceDetector().detect().attributes
    defaults = {SERVICE_NAME: default_service, SERVICE_VERSION: __version__}
    return Resource.create({key: value for key, value in defaults.items() if key not in from_env})


def tracer_provider_from_env(
    *, default_service: str = DEFAULT_SERVICE_NAME, console: TextIO | None = None
) -> TracerProvider:
    """A provider configured by the OTEL_* variables; the caller owns it and calls `shutdown()` on exit.

    OTEL_TRACES_EXPORTER is a comma list of otlp|console|none or any installed exporter's entry-point
    name; unset, it is `otlp` when an OTLP endpoint is configured and `none` otherwise (no exporter
    shouting at a collector that is absent). `otlp` speaks OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
    OTEL_EXPORTER_OTLP_PROTOCOL (`http/protobuf`, the default, or `grpc`). With OTEL_SDK_DISABLED=true
    the provider hands out no-op tracers and nothing is built or exported. The console exporter writes
    to `console` (default: the current stdout).
    """
    if sdk_disabled():
        # The SDK's TracerProvider reads the same variable and hands out no-op tracers; skip the rest.
        return TracerProvider(resource=Resource.get_empty())
    resource = resource_from_env(default_service)
    exporters = [_exporter(name, resource, console) for name in _exporter_names()]
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        if isinstance(exporter, ConsoleSpanExporter):
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter_names() -> list[str]:
    endpoint = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "") or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT, "")
    default = "otlp" if endpoint.strip() else "none"
    names = [name.strip().lower() for name in os.environ.get(OTEL_TRACES_EXPORTER, default).split(",")]
    return [name for name in names if name and name != "none"]


def _exporter(name: str, resource: Resource, console: TextIO | None) -> SpanExporter:
    if name == "otlp":
        return _otlp_exporter()
    if name == "console":
        service = str(resource.attributes.get(SERVICE_NAME, DEFAULT_SERVICE_NAME))
        return ConsoleSpanExporter(service_name=service, out=console or sys.stdout)
    found = entry_points(group=EXPORTER_ENTRY_POINTS, name=name)
    if not found:
        installed = sorted({"otlp", "console", "none", *entry_points(group=EXPORTER_ENTRY_POINTS).names})
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={name!r} is not an installed span exporter; use one of {', '.join(installed)}"
        )
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def _otlp_exporter() -> SpanExporter:
    variable = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL if OTEL_EXPORTER_OTLP_TRACES_PROTOCOL in os.environ else None
    variable = variable or OTEL_EXPORTER_OTLP_PROTOCOL
    protocol = os.environ.get(variable, "").strip().lower() or DEFAULT_PROTOCOL
    # The exporters read their endpoint, headers, timeout, compression and TLS files from OTEL_* themselves.
    try:
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            return HttpExporter()
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            return GrpcExporter()
    except ImportError as exc:  # a trimmed install: say which package the protocol needs
        raise ConfigError(
            f"{variable}={protocol!r} needs the {exc.name} module: pip install opentelemetry-exporter-otlp"
        ) from exc
    except Exception as exc:  # the exporter's own parsing: a timeout that is no number, an unknown compression
        # Names only: header values may hold credentials.
        named = ", ".join(sorted(name for name in os.environ if name.startswith("OTEL_EXPORTER_OTLP_")))
        raise ConfigError(
            f"the OTLP {protocol} trace exporter refused its settings ({exc}); check {named} "
            "against https://opentelemetry.io/docs/specs/otel/protocol/exporter/"
        ) from exc
    raise ConfigError(
        f"{variable}={protocol!r} is not supported (the Python OTLP exporters speak {' or '.join(PROTOCOLS)}); "
        "set it to one of those, or unset it for http/protobuf"
    )


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent naming `span`, or None for a non-recording, invalid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """A parent context continuing the trace a record names, or None to start a new trace."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context
