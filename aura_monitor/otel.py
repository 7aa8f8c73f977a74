"""OpenTelemetry set-up by hand (OTEL_* variables read here) and the job's W3C traceparent."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .exceptions import ConfigError

DEFAULT_SERVICE_NAME = "aura-pipeline"
EXPORTERS = ("otlp", "console", "none")

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    default_service: str = DEFAULT_SERVICE_NAME,
    console: TextIO | None = None,
) -> TracerProvider:
    """A provider configured from OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_*.

    The SDK honours those variables only through its auto-configurator, so they are read here.
    OTEL_TRACES_EXPORTER is a comma list of otlp|console|none; unset, it is `otlp` when an OTLP
    endpoint is configured and `none` otherwise (no exporter shouting at a collector that is absent).
    The console exporter writes to `console` (default: the current stdout). The caller owns the
    provider: call `shutdown()` to flush it before the process exits.
    """
    env = os.environ if environ is None else environ
    service = env.get("OTEL_SERVICE_NAME", "").strip() or default_service
    provider = TracerProvider(resource=Resource({SERVICE_NAME: service}))
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    default_exporter = "otlp" if traces_endpoint or base_endpoint else "none"
    names = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", default_exporter).split(",")]
    for name in filter(None, names):
        if name not in EXPORTERS:
            raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r} is not supported; use one of {', '.join(EXPORTERS)}")
        if name == "console":
            provider.add_span_processor(
                SimpleSpanProcessor(ConsoleSpanExporter(service_name=service, out=console or sys.stdout))
            )
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = traces_endpoint or (
                f"{base_endpoint.rstrip('/')}/v1/traces" if base_endpoint else "http://localhost:4318/v1/traces"
            )
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


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
