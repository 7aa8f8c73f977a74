"""`aura-monitor serve` as a process: it says where it listens only once it does, refuses a taken port in one
line, warns about a missing jobs dir (and waits for it), and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import wait_for, write_native
from tests.support.cli import Running, run_piped


@contextmanager
def serving(jobs_dir: Path, *extra: str) -> Iterator[Running]:
    server = Running("serve", "--jobs-dir", str(jobs_dir), "--port", "0", *extra)
    try:
        yield server
    finally:
        server.close()


def _url(line: str) -> str:
    found = re.search(r"listening on (http://\S+)", line)
    assert found, line
    return found.group(1)


def test_serve_announces_its_url_only_once_it_answers_there(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job-1")
    with serving(jobs_dir) as server:
        url = _url(server.expect("listening on"))
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
        # No waiting: the moment the line is printed the API answers.
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert "watching " + str(jobs_dir) in server.out[0]
        assert not any("does not exist" in line for line in server.err)


def test_serve_on_a_port_in_use_is_one_line_and_exit_2_without_announcing_it(jobs_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_piped("serve", "--jobs-dir", str(jobs_dir), "--port", str(port))
    assert done.code == 2
    assert done.out == ""  # never "listening on" a URL it does not serve
    assert done.err.count("\n") == 1, done.err
    assert f"cannot listen on 127.0.0.1:{port}" in done.err and "in use" in done.err and "--port" in done.err


def test_serve_warns_about_a_missing_jobs_dir_and_picks_it_up_once_created(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "not-yet" / "jobs"
    with serving(jobs_dir) as server:
        url = _url(server.expect("listening on"))
        warning = server.expect("does not exist", stream="err")
        assert str(jobs_dir) in warning and "watching for it" in warning and "--jobs-dir" in warning
        write_native(jobs_dir, "late-1")
        wait_for(
            lambda: httpx.get(f"{url}/api/jobs", timeout=5).json()["count"] == 1,
            timeout=60,
            what="the job in the jobs dir created after start",
        )


def test_sigterm_stops_serve_cleanly_and_frees_its_port(jobs_dir: Path) -> None:
    with serving(jobs_dir) as server:
        url = _url(server.expect("listening on"))
        server.process.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        assert not any("Traceback" in line for line in server.err), server.err
    port = int(url.rsplit(":", 1)[1])
    with socket.create_server(("127.0.0.1", port)):  # the port is free again
        pass
