"""`aura-monitor jobs` as scripts and people use it: piped, under a terminal, as JSON, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from aura_monitor.cli.main import main
from tests.support import wait_for, write_native
from tests.support.cli import run_in_pty, run_piped
from tests.support.live_server import LiveServer, live_server

LONG_ID = "render-" + "x" * 70
LONG_OUTPUT = "/srv/videos/" + "very-long-folder-name/" * 8 + "final.mp4"
LONG_ERROR = "E304-FFMPEG_RUNTIME: " + "encoder said something long " * 6


def _three_jobs(jobs_dir: Path) -> None:
    write_native(jobs_dir, LONG_ID, status="running", stage="Render", percent=42.5)
    write_native(jobs_dir, "done-1", status="completed", stage="Complete", percent=100, outputPath=LONG_OUTPUT)
    write_native(
        jobs_dir, "bad-1", status="failed", stage="Render", percent=60, error={"code": "E1", "message": LONG_ERROR}
    )


def _serving(server: LiveServer, count: int) -> None:
    wait_for(lambda: len(server.sidecar.tracker) == count, what=f"{count} jobs tracked")


def test_piped_jobs_prints_every_value_whole_one_job_per_line(jobs_dir: Path) -> None:
    _three_jobs(jobs_dir)
    with live_server(jobs_dir) as server:
        _serving(server, 3)
        done = run_piped("jobs", "--url", server.url)
        wide = run_piped("jobs", "--url", server.url, "-o", "wide")
    assert done.code == 0 and wide.code == 0, (done.err, wide.err)
    assert "…" not in done.out + wide.out
    header, *rows = done.out.splitlines()
    assert header.split() == ["JOB", "STATUS", "STAGE", "%", "STALLED", "SINCE_PROGRESS", "THRESHOLD", "ATTEMPT", "AGE"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert set(by_id) == {LONG_ID, "done-1", "bad-1"}
    assert by_id[LONG_ID][1:4] == ["running", "Render", "42.5"]
    assert by_id["done-1"][1:5] == ["completed", "Complete", "100", "-"]
    assert max(len(line) for line in done.out.splitlines()) > 80  # wider than rich's piped default, uncut
    assert LONG_OUTPUT in wide.out and " ".join(LONG_ERROR.split()) in wide.out
    assert wide.out.splitlines()[0].split()[9:] == ["VERDICT", "ETA", "CREATED", "COMPLETED", "OUTPUT", "ERROR"]


def test_jobs_dash_o_json_is_the_api_body_field_by_field(jobs_dir: Path) -> None:
    _three_jobs(jobs_dir)
    with live_server(jobs_dir) as server:
        _serving(server, 3)
        done = run_piped("jobs", "--url", server.url, "-o", "json", "--limit", "50")
        api = httpx.get(f"{server.url}/api/jobs", params={"limit": 50}).json()
    assert done.code == 0, done.err
    printed = json.loads(done.out)
    assert set(printed) == set(api) and printed["count"] == api["count"] == 3
    for mine, theirs in zip(printed["jobs"], api["jobs"], strict=True):
        assert set(mine) == set(theirs)
        for key, value in theirs.items():
            if key == "secondsSinceProgress" and value is not None:  # the clock moved between the two reads
                assert mine[key] == pytest.approx(value, abs=5), key
            else:
                assert mine[key] == value, key


def test_jobs_on_a_terminal_draws_a_titled_table(jobs_dir: Path) -> None:
    _three_jobs(jobs_dir)
    with live_server(jobs_dir) as server:
        _serving(server, 3)
        done = run_in_pty("jobs", "--url", server.url, "--status", "running,completed")
    assert done.code == 0, done.err
    assert "2 of 2 jobs" in done.text and "┃ job" in done.text and "done-1" in done.text and "\x1b[" in done.out


def test_jobs_exits_0_on_an_empty_list_1_when_unreachable_and_2_on_a_usage_error(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        empty = run_piped("jobs", "--url", server.url)
        bogus = run_piped("jobs", "--url", server.url, "--status", "bogus")
        zero = run_piped("jobs", "--url", server.url, "--limit", "0")
        bad_format = run_piped("jobs", "--url", server.url, "-o", "yaml")
        port = server.port
    unreachable = run_piped("jobs", "--url", f"http://127.0.0.1:{port}")
    assert (empty.code, empty.out.split()) == (0, ["JOB", "STATUS", "STAGE", "%", "STALLED", "SINCE_PROGRESS",
                                                   "THRESHOLD", "ATTEMPT", "AGE"])  # fmt: skip
    assert unreachable.code == 1 and "cannot reach the sidecar" in unreachable.err
    for usage in (bogus, zero, bad_format):
        assert usage.code == 2, usage.err
    for failed in (unreachable, bogus, zero):
        assert failed.err.count("\n") == 1 and failed.out == ""
    assert "unknown status" in bogus.err and "--limit" in zero.err


@pytest.mark.parametrize("command", ["jobs", "watch", "explain", "serve", "worker", "render", "enqueue"])
def test_every_command_documents_its_exit_codes_in_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text and "\n  0    " in text and "\n  2    usage error" in text
    if command in ("jobs", "watch", "explain"):
        assert "-o {table,wide,json}" in text
