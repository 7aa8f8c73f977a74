"""Reads: paths named by hostile records are attacked for real against a live server and the offline CLI.

Only regular files under the jobs dir, the ffmpeg log dir and `--read-root` dirs are read; `/proc` files,
`/etc/shadow`, links out of place and FIFOs are listed under `notSeen` with the reason and never read or
waited on (docs/security.md, "Reads").
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aura_monitor.cli.main import main
from tests.support import HANG_S, wait_for, write_native
from tests.support.live_server import live_server
from tests.support.live_stack import ManagedProcess, clean_env, free_port, sidecar_argv, wait_ready

pytestmark = pytest.mark.timeout(120)

HOSTILE_LOGS = {
    "environ": "/proc/self/environ",
    "cmdline": "/proc/self/cmdline",
    "shadow": "/etc/shadow",
}


def _not_seen(body: dict[str, Any]) -> str:
    return "\n".join(f"{item['source']}: {item['fact']}" for item in body["notSeen"])


def _explain(base: str, job_id: str, timeout: float = HANG_S) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/jobs/{job_id}/explain", timeout=timeout)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _hostile_jobs(jobs_dir: Path, outside: Path) -> dict[str, str]:
    """One job per attack; returns job id -> the path its record names."""
    named = {}
    for job_id, path in HOSTILE_LOGS.items():
        write_native(jobs_dir, job_id, logPath=path)
        named[job_id] = path
    # The encoder's log and progress file name /proc too.
    write_native(jobs_dir, "encoder", encoder={"logPath": "/proc/self/environ", "progressPath": "/proc/self/cmdline"})
    named["encoder"] = "/proc/self/environ"
    # A link inside the jobs dir to /etc/passwd, and a directory link to /proc/self inside the jobs dir.
    write_native(jobs_dir, "link", logPath=str(jobs_dir / "link" / "render.log"))
    (jobs_dir / "link" / "render.log").symlink_to("/etc/passwd")
    named["link"] = str(jobs_dir / "link" / "render.log")
    write_native(jobs_dir, "dirlink", logPath=str(jobs_dir / "dirlink" / "proc" / "environ"))
    (jobs_dir / "dirlink" / "proc").symlink_to("/proc/self")
    named["dirlink"] = str(jobs_dir / "dirlink" / "proc" / "environ")
    # A job.json that is itself a link to a valid record outside the jobs dir.
    outside.mkdir()
    write_native(outside, "elsewhere", message="read from outside the jobs dir")
    (jobs_dir / "elsewhere").mkdir()
    (jobs_dir / "elsewhere" / "job.json").symlink_to(outside / "elsewhere" / "job.json")
    return named


@pytest.fixture
def token() -> str:
    return "tok-" + secrets.token_hex(16)


@pytest.fixture
def served(tmp_path: Path, jobs_dir: Path, token: str) -> Iterator[str]:
    """`aura-monitor serve` as its own process, its token both on its command line and in its environment."""
    port = free_port()
    env = {**clean_env(), "AURA_MONITOR_TOKEN": token}
    argv = sidecar_argv(jobs_dir, port, "--token", token)
    process = ManagedProcess("aura-monitor", argv, tmp_path / "serve.log", env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/healthz")
        yield base
    finally:
        process.stop()


def test_records_naming_proc_files_etc_shadow_or_links_out_never_leak_a_byte_of_them(
    jobs_dir: Path, tmp_path: Path, served: str, token: str
) -> None:
    named = _hostile_jobs(jobs_dir, tmp_path / "outside")
    wait_for(
        lambda: httpx.get(f"{served}/api/jobs", timeout=HANG_S).json()["count"] >= len(named), HANG_S, "the jobs listed"
    )
    passwd_line = Path("/etc/passwd").read_text().splitlines()[0]
    for job_id, path in named.items():
        body = _explain(served, job_id)
        text = json.dumps(body)
        assert token not in text, f"{job_id}: the token leaked"
        assert passwd_line not in text and "root:" not in text, f"{job_id}: /etc/passwd or /etc/shadow leaked"
        assert all(line["source"] == "job.json Logs" for line in body["logTail"]), body["logTail"]
        assert "outside the allowed roots" in _not_seen(body), f"{job_id} ({path}): {body['notSeen']}"
        assert "--read-root" in _not_seen(body)
    # The linked job.json is refused at ingest: the job is visible as unreadable, with the reason.
    response = httpx.get(f"{served}/api/jobs/elsewhere", timeout=HANG_S)
    assert response.status_code == 404 and "outside the allowed roots" in response.json()["detail"]
    assert "read from outside" not in json.dumps(_explain(served, "elsewhere"))
    everything = (
        httpx.get(f"{served}/api/jobs", timeout=HANG_S).text + httpx.get(f"{served}/metrics", timeout=HANG_S).text
    )
    assert token not in everything


def test_the_offline_explain_refuses_the_same_paths_and_never_prints_them(
    jobs_dir: Path, tmp_path: Path, token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    named = _hostile_jobs(jobs_dir, tmp_path / "outside")
    for job_id in named:
        assert main(["explain", job_id, "--json", "--jobs-dir", str(jobs_dir)]) == 0
        out = capsys.readouterr().out
        assert "root:" not in out
        assert "outside the allowed roots" in _not_seen(json.loads(out)), out
    (jobs_dir / "fifo").mkdir()
    os.mkfifo(jobs_dir / "fifo" / "job.json")
    assert main(["explain", "fifo", "--json", "--jobs-dir", str(jobs_dir)]) == 0
    assert "job.json was not read: not a regular file (FIFO)" in _not_seen(json.loads(capsys.readouterr().out))
    # Its own process, the token in its environment: /proc/self/environ is then the CLI's own.
    argv = [sys.executable, "-m", "aura_monitor", "explain", "environ", "--json", "--jobs-dir", str(jobs_dir)]
    env = {**os.environ, "AURA_MONITOR_TOKEN": token}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    assert "outside the allowed roots (/proc/self/environ)" in _not_seen(json.loads(done.stdout))


def test_a_fifo_job_json_never_blocks_the_ingest_and_shows_as_unreadable(jobs_dir: Path, tmp_path: Path) -> None:
    write_native(jobs_dir, "healthy", percent=10.0)
    (jobs_dir / "fifo").mkdir()
    os.mkfifo(jobs_dir / "fifo" / "job.json")
    with live_server(jobs_dir, unreadable_grace=0.5) as server:
        base = server.url
        for percent in (20.0, 30.0, 40.0):  # the FIFO was queued for reading: later writes still arrive
            write_native(jobs_dir, "healthy", percent=percent)
            wait_for(
                lambda p=percent: httpx.get(f"{base}/api/jobs/healthy", timeout=HANG_S).json()["percent"] == p,
                HANG_S,
                f"the healthy job at {percent}%",
            )
        write_native(jobs_dir, "newcomer")
        wait_for(lambda: httpx.get(f"{base}/api/jobs/newcomer", timeout=HANG_S).status_code == 200, HANG_S, "a new job")
        assert httpx.get(f"{base}/healthz", timeout=HANG_S).status_code == 200
        assert httpx.get(f"{base}/readyz", timeout=HANG_S).status_code == 200
        response = httpx.get(f"{base}/api/jobs/fifo", timeout=HANG_S)
        assert response.status_code == 404 and "not a regular file (FIFO)" in response.json()["detail"]

        def unreadable() -> dict[str, Any] | None:
            body = _explain(base, "fifo")
            return body if body["verdict"] == "record_unreadable" else None

        body = wait_for(unreadable, HANG_S, "the FIFO job to be diagnosed record_unreadable")
        assert "not a regular file (FIFO)" in _not_seen(body)


def test_fifo_logs_never_block_explain_and_40_calls_leave_health_and_metrics_answering(jobs_dir: Path) -> None:
    folder = jobs_dir / "fifologs"
    folder.mkdir()
    for name in ("job.log", "ffmpeg.log", "progress.txt"):
        os.mkfifo(folder / name)
    write_native(
        jobs_dir,
        "fifologs",
        logPath=str(folder / "job.log"),
        encoder={"logPath": str(folder / "ffmpeg.log"), "progressPath": str(folder / "progress.txt")},
    )
    with live_server(jobs_dir) as server:
        wait_for(
            lambda: httpx.get(f"{server.url}/api/jobs/fifologs", timeout=HANG_S).status_code == 200, HANG_S, "the job"
        )
        for _ in range(45):
            # A FIFO opened for reading blocks until a writer comes (none will): answering at all is the point.
            body = _explain(server.url, "fifologs", timeout=HANG_S)
        assert _not_seen(body).count("not a regular file (FIFO)") == 3, body["notSeen"]
        assert httpx.get(f"{server.url}/healthz", timeout=HANG_S).status_code == 200
        assert httpx.get(f"{server.url}/metrics", timeout=HANG_S).status_code == 200


def test_a_log_under_an_operator_read_root_is_read_and_links_within_the_roots_are_followed(
    jobs_dir: Path, tmp_path: Path
) -> None:
    trusted = tmp_path / "render-logs"
    trusted.mkdir()
    (trusted / "job.log").write_text("voice track mixed\nrender step 3 of 5 done\n")
    write_native(jobs_dir, "operator", logPath=str(trusted / "job.log"))
    (jobs_dir / "inner").mkdir()
    (jobs_dir / "inner" / "real.log").write_text("inner line\n")
    (jobs_dir / "inner" / "current.log").symlink_to(jobs_dir / "inner" / "real.log")
    write_native(jobs_dir, "inner", logPath=str(jobs_dir / "inner" / "current.log"))

    with live_server(jobs_dir) as server:
        wait_for(lambda: httpx.get(f"{server.url}/api/jobs", timeout=HANG_S).json()["count"] == 2, HANG_S, "both jobs")
        refused = _explain(server.url, "operator")
        assert "render step" not in json.dumps(refused["logTail"])
        assert f"{trusted / 'job.log'} was not read: outside the allowed roots" in _not_seen(refused)
        assert "inner line" in [line["text"] for line in _explain(server.url, "inner")["logTail"]]

    with live_server(jobs_dir, read_root=[trusted]) as server:
        wait_for(lambda: httpx.get(f"{server.url}/api/jobs", timeout=HANG_S).json()["count"] == 2, HANG_S, "both jobs")
        body = _explain(server.url, "operator")
        assert "render step 3 of 5 done" in [line["text"] for line in body["logTail"]]
        assert "job log" not in _not_seen(body)
