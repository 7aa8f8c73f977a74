"""Every route answers bad input with a 4xx problem, never a 5xx: schemathesis from the OpenAPI schema,
plus traversal and oversized inputs on every route that takes a job id (-m reliability)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from aura_monitor.api.app import create_app
from aura_monitor.config import load_settings
from aura_monitor.sidecar import Sidecar
from tests.support import wait_for, write_native

pytestmark = pytest.mark.reliability

# Endless SSE bodies cannot go through an in-process transport; they are fuzzed by their own tests.
STREAMING = r".*/(events|stream)$"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real uvicorn server on a free loopback port (the fuzzer speaks HTTP to it)."""
    jobs_dir = tmp_path_factory.mktemp("fuzz") / "jobs"
    jobs_dir.mkdir()
    write_native(jobs_dir, "job-1", stage="Render", percent=50.0)
    write_native(jobs_dir, "job-2", status="failed", stage="Render", percent=60.0, error={"message": "boom"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(Sidecar(load_settings(jobs_dir=jobs_dir)))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", jobs_dir
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_fuzzing_the_openapi_schema_never_yields_a_5xx(served: tuple[str, Path]) -> None:
    url, _ = served
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=STREAMING)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def never_a_5xx(case: schemathesis.Case) -> None:
            response = case.call(base_url=url)
            assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 400:
                kind = response.headers.get("content-type") or [""]
                assert kind[0].startswith("application/problem+json"), case.formatted_path

        never_a_5xx()


BAD_IDS = [
    "..",
    "...",
    ".hidden",
    "a..b",
    "-dash-first",
    "x" * 129,
    "x" * 5000,
    "é",
    "job%00",
    "a b",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "%2F",
]


def test_traversal_and_oversized_ids_are_refused_on_every_route(served: tuple[str, Path]) -> None:
    url, jobs_dir = served
    before = sorted(p.name for p in jobs_dir.parent.iterdir())
    with httpx.Client(base_url=url, timeout=10) as client:
        paths = client.get("/openapi.json").json()["paths"]
        routes = [(m.upper(), p) for p, ops in paths.items() if "{job_id}" in p for m in ops]
        assert len(routes) >= 3
        for method, path in routes:
            for bad in BAD_IDS:
                if bad == ".." and path.endswith("/events"):
                    continue  # the client itself resolves /api/jobs/../events to /api/events, a real route
                target = path.replace("{job_id}", bad)
                if path.endswith(("/events", "/stream")):
                    with client.stream(method, target) as response:  # refused before any stream starts
                        status, kind = response.status_code, response.headers.get("content-type", "")
                else:
                    response = client.request(method, target)
                    status, kind = response.status_code, response.headers.get("content-type", "")
                assert 400 <= status < 500, (method, path, bad, status)
                assert kind.startswith("application/problem+json")
        huge = client.get("/api/jobs", params={"status": "running," * 5000})
        assert huge.status_code == 400
    assert sorted(p.name for p in jobs_dir.parent.iterdir()) == before, "nothing may be written outside jobs dir"
