"""The running sidecar's spans, configured only by OTEL_* variables, reaching a real OTLP/gRPC collector."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import STARTUP_S, write_native
from tests.support.live_stack import clean_env, free_port, managed, sidecar_argv
from tests.support.otlp import STATUS_ERROR, OtlpGrpcReceiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def receiver() -> Iterator[OtlpGrpcReceiver]:
    receiver = OtlpGrpcReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def sidecar(tmp_path: Path, receiver: OtlpGrpcReceiver) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    environ = clean_env()
    environ.update(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=ci,host.name=render-3",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    argv = sidecar_argv(jobs_dir, free_port(), "--stall-threshold", "1")
    # stop() sends SIGTERM first: the spans still open are ended and exported as the sidecar shuts down
    with managed("aura-monitor serve", argv, tmp_path / "sidecar.log", environ) as process:
        yield jobs_dir, process.process


def test_the_sidecar_exports_a_stall_to_the_jobs_trace_while_it_lasts_over_grpc(
    sidecar: tuple[Path, subprocess.Popen[bytes]], receiver: OtlpGrpcReceiver
) -> None:
    jobs_dir, process = sidecar
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    started = time.time()
    write_native(jobs_dir, "live-1", traceparent=traceparent, startedAt=iso(started), lastProgressAt=iso(started))

    detected = receiver.wait_for_span("stall.detected", timeout=STARTUP_S)  # includes the sidecar starting
    exported_after = time.time() - started
    assert process.poll() is None
    assert receiver.named("stall") == []  # the stall goes on, and the tracing UI already shows it
    assert (detected.trace_id, detected.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert detected.status_code == STATUS_ERROR
    assert detected.resource["deployment.environment.name"] == "ci"
    assert (detected.service, detected.resource["host.name"]) == ("aura-monitor", "render-3")
    print(f"stall.detected reached the collector {exported_after:.2f} s after the last progress (threshold 1 s)")

    write_native(
        jobs_dir,
        "live-1",
        revision=2,
        percent=60.0,
        traceparent=traceparent,
        startedAt=iso(started),
        lastProgressAt=iso(time.time()),
    )
    stall = receiver.wait_for_span("stall", timeout=STARTUP_S)  # includes the sidecar starting
    assert detected.links == [(TRACE_ID, stall.span_id)]
    assert stall.attributes["aura.stall.outcome"] == "progress resumed"
    assert {span.trace_id for span in receiver.all()} == {TRACE_ID}  # nothing synthesized beside it
