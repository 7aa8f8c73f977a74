"""Fixtures and helpers of the reporter SDK tests (registered in conftest.py through pytest_plugins)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aura_monitor.clock import FakeClock
from aura_monitor.jobs.model import JobRecord
from aura_monitor.records import parse_record
from aura_monitor.reporter import JobReporter


def parsed(reporter: JobReporter) -> JobRecord:
    return parse_record(reporter.record_path.read_bytes())


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reporter(tmp_path: Path, fake_clock: FakeClock) -> JobReporter:
    return JobReporter.create(tmp_path / "jobs", "job-1", clock=fake_clock, request={"durationSeconds": 4})


@pytest.fixture
def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter
