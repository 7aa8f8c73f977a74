"""Hostile browsers and floods against a real server: cross-site POSTs, foreign Hosts, weak tokens, fd limits.

Every attack is performed for real: Chromium (through Playwright) on a page served from another loopback
port and from file://, raw Host headers, the CLI in a subprocess, and a sidecar subprocess under `prlimit`.
"""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from aura_monitor import views
from aura_monitor.api import jobs as jobs_api
from aura_monitor.api.limits import stream_cap
from aura_monitor.ratelog import RateLimitedLog
from aura_monitor.records import SCHEMA
from aura_monitor.records.timestamps import format_iso
from tests.support import HANG_S, STARTUP_S, wait_for, write_native
from tests.support.board_fixtures import OpenBoard, Serve
from tests.support.live_server import LiveServer, SseClient, live_server
from tests.support.live_stack import aura_monitor_argv, clean_env, free_port, managed, sidecar_argv, wait_ready

TOKEN = "a-token-of-32-characters-for-us!"
BASE_TIME = 1_793_000_000.0  # 2026-10-26


@contextmanager
def page_server(folder: Path) -> Iterator[str]:
    """A plain static server for `folder` on another loopback port: the attacker's page."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="attacker-page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


ATTACK = """<!doctype html><meta charset="utf-8"><title>cat pictures</title>
<script>
  // A simple request (no custom header, no body): no CORS preflight, so the browser sends it as is.
  fetch("{target}", {{ method: "POST", mode: "no-cors" }}).catch(() => {{}});
</script>"""


def attack_from(page: Page, url: str) -> int:
    """Open the attacker's page at `url`; the status the sidecar answered its POST with."""
    with page.expect_response(lambda response: "/cancel" in response.url, timeout=15_000) as answer:
        page.goto(url)
    return answer.value.status


def test_a_page_on_another_loopback_port_or_from_a_file_cannot_cancel_a_job(
    jobs_dir: Path, tmp_path: Path, browser: Browser
) -> None:
    write_native(jobs_dir, "victim", status="running")
    pages = tmp_path / "attacker"
    pages.mkdir()
    with live_server(jobs_dir) as server, page_server(pages) as elsewhere:  # loopback, no token: the old hole
        wait_for(lambda: server.sidecar.tracker.get("victim"), what="the job to be tracked")
        (pages / "attack.html").write_text(ATTACK.format(target=f"{server.url}/api/jobs/victim/cancel"))
        context = browser.new_context()
        try:
            page = context.new_page()
            assert attack_from(page, f"{elsewhere}/attack.html") == 403
            assert attack_from(page, (pages / "attack.html").as_uri()) == 403  # Origin: null
        finally:
            context.close()
        assert not (jobs_dir / "victim" / "requests").exists(), "a cancel request was written"
        job = httpx.get(f"{server.url}/api/jobs/victim").json()
        assert job["status"] == "running"


def test_a_cross_site_post_gets_a_problem_naming_the_origin_and_the_way_out(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job"), what="the job to be tracked")
        url = f"{server.url}/api/jobs/job/cancel"
        refused = httpx.post(url, headers={"Origin": "http://127.0.0.1:1"})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "'http://127.0.0.1:1'" in refused.json()["detail"] and "bearer token" in refused.json()["detail"]
        # A browser that sends only Sec-Fetch-Site (no Origin) is judged by it: same-site is another port.
        assert httpx.post(url, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
        assert httpx.post(url, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert not (jobs_dir / "job" / "requests").exists()
        # The board's own origin passes.
        assert httpx.post(url, headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"}).status_code == 202


def test_a_script_without_origin_passes_with_the_token_and_only_with_it(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(jobs_dir, token=TOKEN) as server:
        wait_for(lambda: server.sidecar.tracker.get("job"), what="the job to be tracked")
        url = f"{server.url}/api/jobs/job/cancel"
        assert httpx.post(url).status_code == 401
        accepted = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert accepted.status_code == 202 and accepted.json()["action"] == "cancel"


def raw_get(port: int, path: str, host: str) -> tuple[int, dict[str, Any]]:
    """GET with exactly this Host header (httpx would normalise it); the status and the JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if body.startswith(b"{") else {})


GET_ROUTES = ("/", "/api/jobs", "/api/jobs/job", "/api/queue", "/api/events", "/healthz", "/readyz", "/metrics")


def test_a_foreign_host_is_refused_on_every_route_so_dns_rebinding_reads_nothing(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job"), what="the job to be tracked")
        for route in GET_ROUTES:
            status, body = raw_get(server.port, route, "evil.example")
            assert status == 421, route
            assert "--allowed-host evil.example" in body["detail"] and "--external-url" in body["detail"]
        # Address literals cannot be rebound (a browser sends the IP it was given): kubelet probes, scrapers.
        for host in ("localhost", f"localhost:{server.port}", "127.0.0.1:1", "[::1]:9465", "LOCALHOST:80", "10.1.2.3"):
            assert raw_get(server.port, "/api/jobs/job", host)[0] == 200, host


def test_allowed_hosts_and_the_external_urls_host_are_answered_and_a_star_answers_any(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(
        jobs_dir, external_url="https://monitor.render.example/", allowed_host=["node7.lan", "sidecar"]
    ) as server:
        wait_for(lambda: server.sidecar.tracker.get("job"), what="the job to be tracked")
        for host in ("monitor.render.example", "node7.lan:9465", "sidecar"):
            assert raw_get(server.port, "/api/jobs/job", host)[0] == 200, host
        assert raw_get(server.port, "/api/jobs/job", "node8.lan")[0] == 421
        # The external URL's origin may POST (a board behind a TLS proxy at that address).
        post = httpx.post(
            f"{server.url}/api/jobs/job/cancel",
            headers={"Origin": "https://monitor.render.example", "Host": "monitor.render.example"},
        )
        assert post.status_code == 202
    with live_server(jobs_dir, allowed_host=["*"]) as server:
        assert raw_get(server.port, "/healthz", "anything.example")[0] == 200


@pytest.mark.parametrize("token", [" ", "short-token    "])
def test_serve_beyond_loopback_refuses_a_blank_or_short_token_in_one_line_with_exit_2(
    tmp_path: Path, token: str
) -> None:
    done = subprocess.run(
        aura_monitor_argv("serve", "--jobs-dir", str(tmp_path), "--host", "0.0.0.0"),
        env={**clean_env(), "AURA_MONITOR_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
        check=False,
    )
    assert done.returncode == 2
    err = done.stderr.strip()
    assert err.count("\n") == 0 and "token" in err and done.stdout == ""
    assert ("16 characters" in err) if token.strip() else ("without a token" in err)


def test_the_stream_cap_follows_the_open_file_limit() -> None:
    assert stream_cap(None, 1024) == 768
    assert stream_cap(None, 256) == 192
    assert stream_cap(50, 1024) == 50
    assert stream_cap(None, None) == 10_000
    assert stream_cap(None, 40) == 1


# -- floods ----------------------------------------------------------------------------------------------


def open_stream(port: int, path: str) -> tuple[socket.socket, int, dict[str, str]]:
    """Open an SSE request and read its status line and headers; the socket stays open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_S)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return sock, int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}


@contextmanager
def sidecar_process(jobs_dir: Path, log: Path, *flags: str, nofile: str) -> Iterator[tuple[int, int]]:
    """`aura-monitor serve` under `prlimit --nofile=<soft[:hard]>`, its output in `log`; yields its port and pid."""
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is missing"
    port = free_port()
    argv = [prlimit, f"--nofile={nofile}", *sidecar_argv(jobs_dir, port, "--heartbeat-interval", "1", *flags)]
    with managed("aura-monitor serve", argv, log, clean_env()) as sidecar:
        wait_ready(sidecar, f"http://127.0.0.1:{port}/readyz")
        yield port, sidecar.process.pid


def test_under_an_fd_limit_streams_past_the_cap_get_503_while_health_metrics_and_open_streams_carry_on(
    jobs_dir: Path, tmp_path: Path
) -> None:
    write_native(jobs_dir, "job", status="running", percent=10.0)
    log = tmp_path / "sidecar.log"
    cap = stream_cap(None, 256)
    extra = 300  # more refused clients holding their connection than there are descriptors at all
    with sidecar_process(jobs_dir, log, nofile="256") as (port, _), ExitStack() as held:
        watcher = SseClient(port, "/api/jobs/job/events")
        held.callback(watcher.close)
        watcher.wait_for_event("connected")
        for _ in range(cap - 1):
            sock, status, _ = open_stream(port, "/api/jobs/job/events")
            held.callback(sock.close)
            assert status == 200
        for _ in range(extra):
            sock, status, headers = open_stream(port, "/api/events")
            held.callback(sock.close)  # kept open by the client: the server must not keep its end
            assert status == 503 and int(headers["retry-after"]) > 0 and headers["connection"] == "close"
        for _ in range(5):
            # Answered at all is the point (each call has a deadline only a hang reaches); how fast: bench/.
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=HANG_S).status_code == 200
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=HANG_S)
            assert metrics.status_code == 200 and f"aura_sse_refused_total {extra}.0" in metrics.text
        write_native(jobs_dir, "job", status="running", percent=60.0)
        watcher.wait(
            lambda events: any(e.name == "step-progress" and e.data.get("percent") == 60.0 for e in events),
            timeout=HANG_S,
            what="the progress event on a stream opened before the flood",
        )
    text = log.read_text(errors="replace")
    assert log.stat().st_size < 200_000, f"{log.stat().st_size} bytes of log for {extra} refused streams"
    assert "refused an SSE stream" in text and "repeating" in text
    assert text.count("refused an SSE stream") == 3
    assert f"SSE streams at their cap: {extra - 3} more like this" in text  # the summary, written at shutdown


def test_a_repeated_error_is_logged_a_few_times_then_summarised_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.flood"), burst=2, interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.flood"):
        for i in range(10_000):
            now[0] = i * 0.01  # 100 a second for 100 s
            limited.log(logging.WARNING, "disk", "write failed: %d", i)
        limited.flush()
    lines = [record.getMessage() for record in caplog.records]
    assert lines[:3] == [
        "write failed: 0",
        "write failed: 1",
        "disk: repeating; further occurrences are counted and summarized every 60 s",
    ]
    assert "disk: 5998 more like this in the last 60 s (not logged one by one)" in lines
    assert len(lines) < 10


def test_serve_raises_a_low_open_file_soft_limit_to_the_hard_limit(jobs_dir: Path, tmp_path: Path) -> None:
    with sidecar_process(jobs_dir, tmp_path / "sidecar.log", nofile="256:4096") as (_, pid):
        limits = Path(f"/proc/{pid}/limits").read_text()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3:5] == ["4096", "4096"], row


def write_many(jobs_dir: Path, count: int, running: int) -> None:
    """`count` small native records (the first `running` still running), written straight to disk."""
    for i in range(count):
        folder = jobs_dir / f"job-{i:05d}"
        folder.mkdir(parents=True)
        status = "running" if i < running else "completed"
        doc = {"schema": SCHEMA, "id": folder.name, "revision": 1, "status": status, "stage": "Render"}
        doc |= {
            "percent": 50.0 if i < running else 100.0,
            "createdAt": format_iso(BASE_TIME + i),  # job-00000 is the oldest
        }
        (folder / "job.json").write_text(json.dumps(doc))


def connected_frame(server: LiveServer, query: str = "") -> tuple[int, dict[str, Any]]:
    """The size in bytes and the data of /api/events' `connected` event."""
    client = SseClient(server.port, f"/api/events{query}")
    try:
        event = client.wait_for_event("connected", timeout=60)
        return len(json.dumps(event.data)), event.data
    finally:
        client.close()


def test_the_all_jobs_snapshot_is_bounded_and_counts_what_it_leaves_out(jobs_dir: Path) -> None:
    write_many(jobs_dir, 3_000, running=10)
    with live_server(jobs_dir, snapshot_finished=50) as server:
        wait_for(lambda: len(server.sidecar.tracker) == 3_000, timeout=120, what="3,000 jobs tracked")
        size, data = connected_frame(server)
        assert data["count"] == 60 and data["total"] == 3_000 and data["complete"] is False
        assert data["counts"] == {"running": 10, "completed": 2_990}
        assert data["omitted"] == {"completed": 2_940}
        listed = {job["id"] for job in data["jobs"]}
        assert {f"job-{i:05d}" for i in range(10)} <= listed  # every active job
        assert "job-02999" in listed and "job-00010" not in listed  # the most recent finished ones
        full_size, full = connected_frame(server, "?snapshot=all")
        assert full["count"] == 3_000 and full["complete"] is True and full["omitted"] == {}
        assert size * 20 < full_size, (size, full_size)
        assert size < 100_000


def test_the_board_lists_every_active_job_and_counts_the_finished_ones_it_was_not_sent(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    write_many(jobs_dir, 400, running=5)
    server = serve(snapshot_finished=20)
    wait_for(lambda: server.sidecar is not None and len(server.sidecar.tracker) == 400, what="400 jobs tracked")
    page = open_board(server.url)
    rows = page.locator("tbody tr[data-id]")
    wait_for(lambda: rows.count() == 25, what="the 5 running and 20 recent finished jobs listed")
    for i in range(5):
        assert page.locator(f'tr[data-id="job-{i:05d}"]').count() == 1
    shown = page.locator('[data-part="shown"]')
    wait_for(lambda: shown.text_content() == "25 of 400 jobs", what="the count of all jobs")
    assert page.locator('[data-count="completed"]').first.text_content() == "395"
    assert "counted but not listed" in (shown.get_attribute("title") or "")


def test_the_queue_and_the_job_list_build_views_only_for_the_page_they_return(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_many(jobs_dir, 300, running=300)
    built: list[str] = []
    real, real_item = views.job_view, views.queue_item

    def counting(state: Any, record: Any, now: float, base_url: str | None = None) -> Any:
        built.append(state.id)
        return real(state, record, now, base_url)

    def counting_item(state: Any, record: Any, now: float, base_url: str | None = None) -> Any:  # Aura's queue shape
        built.append(state.id)
        return real_item(state, record, now, base_url)

    monkeypatch.setattr(views, "job_view", counting)
    monkeypatch.setattr(jobs_api, "job_view", counting, raising=False)
    monkeypatch.setattr(jobs_api, "queue_item", counting_item)
    with live_server(jobs_dir) as server:
        wait_for(lambda: len(server.sidecar.tracker) == 300, what="300 jobs tracked")
        for path in ("/api/queue?limit=1", "/api/queue?status=running&limit=1", "/api/jobs?limit=1"):
            built.clear()
            answer = httpx.get(f"{server.url}{path}", timeout=30)
            assert answer.status_code == 200 and len(answer.json()["jobs"]) == 1, path
            assert len(built) == 1, f"{path} built {len(built)} views for one job"


def test_a_bad_snapshot_query_is_a_400_problem(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        answer = httpx.get(f"{server.url}/api/events?snapshot=everything")
        assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"


def test_a_refused_stream_does_not_count_against_the_cap(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running")
    with live_server(jobs_dir, max_streams=2) as server:
        wait_for(lambda: server.sidecar.tracker.get("job"), what="the job to be tracked")
        first = SseClient(server.port, "/api/jobs/job/events")
        second = SseClient(server.port, "/api/events")
        try:
            first.wait_for_event("connected")
            second.wait_for_event("connected")
            refused = httpx.get(f"{server.url}/api/events", timeout=HANG_S)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
            assert refused.json()["maxStreams"] == 2 and "--max-streams" in refused.json()["detail"]
            assert httpx.get(f"{server.url}/api/jobs/nope/events", timeout=HANG_S).status_code == 503
        finally:
            first.close()

        def reopened() -> bool:
            sock, status, _ = open_stream(server.port, "/api/jobs/job/events")
            sock.close()
            return status == 200

        try:
            wait_for(reopened, timeout=HANG_S, what="a new stream once one was closed")
        finally:
            second.close()
