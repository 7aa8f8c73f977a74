"""The provider built from the OTEL_* variables, checked against real OTLP/HTTP and OTLP/gRPC receivers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from aura_monitor import __version__
from aura_monitor.exceptions import ConfigError
from aura_monitor.otel import tracer_provider_from_env
from aura_monitor.telemetry.tracing import setup_tracing
from tests.support.otlp import OtlpGrpcReceiver, OtlpHttpReceiver, clear_otel_environment


@pytest.fixture(autouse=True)
def otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture
def http_receiver() -> Iterator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    receiver = OtlpGrpcReceiver()
    yield receiver
    receiver.close()


def one_span(provider: TracerProvider, name: str = "probe") -> None:
    """Start and end one span, then shut the provider down (which flushes every exporter)."""
    provider.get_tracer("test").start_span(name).end()
    provider.shutdown()


def test_otel_resource_attributes_and_service_name_reach_the_collector(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.url)
    attributes = "deployment.environment.name=prod,host.name=render-7,k8s.pod.name=a%2Cb"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", attributes)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "farm-sidecar")
    one_span(setup_tracing("aura-monitor"))

    [probe] = http_receiver.named("probe")
    assert probe.resource["deployment.environment.name"] == "prod"
    assert probe.resource["host.name"] == "render-7"
    assert probe.resource["k8s.pod.name"] == "a,b"  # percent-decoded, as the spec says
    assert probe.service == "farm-sidecar"  # OTEL_SERVICE_NAME wins over the built-in default
    assert probe.resource["service.version"] == __version__
    assert probe.resource["telemetry.sdk.language"] == "python"  # the SDK's own detector ran
    assert http_receiver.paths == ["/v1/traces"]


def test_a_service_name_in_otel_resource_attributes_is_honoured(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.url)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=render-farm,service.version=9.9")
    one_span(tracer_provider_from_env())

    [probe] = http_receiver.named("probe")
    assert (probe.service, probe.resource["service.version"]) == ("render-farm", "9.9")


def test_the_grpc_protocol_exports_to_an_otlp_grpc_collector_with_the_configured_headers(
    grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_receiver.url)  # http:// means plaintext for gRPC
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=render-farm")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    one_span(setup_tracing("aura-monitor"))

    [probe] = grpc_receiver.named("probe")
    assert probe.service == "aura-monitor"
    assert grpc_receiver.headers[0]["x-tenant"] == "render-farm"


def test_the_traces_protocol_variable_overrides_the_general_one(
    grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", grpc_receiver.url)
    one_span(setup_tracing("aura-monitor"))

    assert [span.name for span in grpc_receiver.all()] == ["probe"]


def test_http_headers_and_a_signal_specific_endpoint_are_used_as_given(
    http_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{http_receiver.url}/custom/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=Bearer%20t0ken")
    one_span(setup_tracing("aura-monitor"))

    assert http_receiver.paths == ["/custom/traces"]  # a signal endpoint gets no /v1/traces appended
    assert http_receiver.headers[0]["authorization"] == "Bearer t0ken"


def test_otel_sdk_disabled_builds_no_exporter_and_sends_nothing(
    http_receiver: OtlpHttpReceiver, grpc_receiver: OtlpGrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    for protocol, url in (("http/protobuf", http_receiver.url), ("grpc", grpc_receiver.url)):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        provider = setup_tracing("aura-monitor")
        span = provider.get_tracer("test").start_span("ignored")
        assert not span.is_recording()
        span.end()
        assert provider.force_flush()
        provider.shutdown()
    assert (http_receiver.all(), grpc_receiver.all()) == ([], [])
    # Enabled again, the same configuration does export: the receivers above were listening.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    one_span(setup_tracing("aura-monitor"))
    assert [span.name for span in grpc_receiver.all()] == ["probe"]


def test_an_otlp_protocol_the_exporters_do_not_speak_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'.*http/protobuf or grpc"):
        setup_tracing("aura-monitor")


def test_an_exporter_that_is_not_installed_is_a_config_error_listing_the_installed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match=r"'zipkin' is not an installed span exporter; .*otlp_proto_grpc"):
        tracer_provider_from_env()


def test_an_exporter_setting_the_exporter_cannot_parse_is_a_config_error_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "ten")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20secret")
    with pytest.raises(ConfigError, match=r"grpc trace exporter refused .*'ten'.*OTEL_EXPORTER_OTLP_TIMEOUT") as raised:
        setup_tracing("aura-monitor")
    assert "secret" not in str(raised.value)


def test_the_grpc_protocol_without_its_exporter_installed_says_which_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail as on an install without the package (the venv has it).
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='grpc' needs .*pip install"):
        setup_tracing("aura-monitor")
