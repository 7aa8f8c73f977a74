"""Helpers shared by tests: waiting on conditions with a deadline, writing records as real writers do."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from aura_monitor.records import SCHEMA

T = TypeVar("T")

# The ceiling for a subprocess (`python -m aura_monitor`, Prometheus, Alertmanager) to start and answer. A
# bound only a hang reaches, not a wait: starting `python -m aura_monitor` took 17 s of wall time on the
# shared 2-core machine at load 20, and a 15-20 s ceiling failed tests there. Every start-up wait uses this.
STARTUP_S = 60.0

# The deadline for something to arrive (an event, an answer, a stream's end) when the test asserts that it
# does, not how fast: only a hang reaches it. Speed is measured in bench/, never asserted in a test.
HANG_S = 30.0


def wait_for(
    probe: Callable[[], T | None],
    timeout: float = HANG_S,
    what: str = "condition",
    *,
    interval: float = 0.01,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Poll `probe` until it returns something truthy and return that; fail naming `what` after `timeout` s.

    Exceptions of the `ignoring` types count as "not yet" (a server still starting, say); the last one is
    named in the failure.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except ignoring as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


def write_native(jobs_dir: Path, job_id: str, **fields: object) -> Path:
    """Write a native record atomically (temp file + os.replace), as the reporter SDK does."""
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "id": job_id,
        "revision": 1,
        "status": "running",
        "stage": "Render",
        "percent": 50.0,
    }
    doc.update(fields)
    folder = jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"job.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, folder / "job.json")
    return folder / "job.json"


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse exposition text as Prometheus would: {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    return scraped(text).get((name, frozenset(labels.items())))
