"""`aura-monitor watch` and `aura-monitor jobs` against a real server, and their pure parts."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from aura_monitor.cli.client import ServerUnreachable
from aura_monitor.cli.main import main
from aura_monitor.cli.watch import JobView, Reconnect, follow
from tests.support import STARTUP_S, wait_for, write_native
from tests.support.cli import run_in_pty
from tests.support.live_server import LiveServer, live_server


class Watch:
    """`python -m aura_monitor watch` in a subprocess, its output read line by line as it comes."""

    def __init__(self, url: str, job_id: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aura_monitor", "watch", job_id, "--url", url, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True).start()

    # A bound, not a wait: starting `python -m aura_monitor` took 17 s of wall time (1.5 s CPU) on a loaded
    # 2-core machine, past the old 15 s, so the first line of a healthy watch came too late.
    def expect(self, text: str, timeout: float = STARTUP_S) -> None:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                try:
                    line = self.lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                self.seen.append(line)
                if text in line:
                    return
        finally:
            timer.cancel()
        raise AssertionError(f"watch never printed {text!r}; it printed {self.seen}")

    def exit_code(self, timeout: float = STARTUP_S) -> int:
        code = self.process.wait(timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()


@contextmanager
def watching(url: str, job_id: str, *extra: str) -> Iterator[Watch]:
    watch = Watch(url, job_id, *extra)
    try:
        yield watch
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
        watch.process.wait()
        for stream in (watch.process.stdout, watch.process.stderr):
            if stream is not None:
                stream.close()


def revision_seen(server: LiveServer, job_id: str, revision: int) -> bool:
    state = server.sidecar.tracker.get(job_id)
    return state is not None and state.record is not None and state.record.revision == revision


@pytest.mark.parametrize(
    ("ending", "code", "printed"),
    [
        ({"status": "completed", "percent": 100, "stage": "Complete", "outputPath": "/v/x.mp4"}, 0, "/v/x.mp4"),
        ({"status": "failed", "error": {"code": "E304-FFMPEG_RUNTIME", "message": "boom"}}, 1, "E304-FFMPEG_RUNTIME"),
        ({"status": "cancelled"}, 3, "cancelled"),
    ],
)
def test_watch_follows_a_job_to_its_end_and_exits_with_its_outcome(
    jobs_dir: Path, ending: dict[str, object], code: int, printed: str
) -> None:
    write_native(jobs_dir, "job", status="running", stage="TTS", percent=30, revision=1)
    with live_server(jobs_dir) as server, watching(server.url, "job") as watch:
        watch.expect("job: running TTS 30%")
        write_native(jobs_dir, "job", status="running", stage="Render", percent=80, revision=2)
        watch.expect("stage TTS -> Render")
        write_native(jobs_dir, "job", revision=3, **{"stage": "Render", "percent": 90, **ending})
        assert watch.exit_code() == code
        assert any(printed in line for line in watch.seen), watch.seen


def test_watch_resumes_across_a_sidecar_restart_and_still_sees_the_ending(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="TTS", percent=30, revision=1)
    with live_server(jobs_dir, sse_retry_ms=100) as first:
        port = first.port
        watch = Watch(first.url, "job")
        watch.expect("job: running TTS 30%")
    try:
        write_native(jobs_dir, "job", status="completed", stage="Complete", percent=100, revision=2)
        with live_server(jobs_dir, port=port, sse_retry_ms=100):
            watch.expect("(resync)")
            assert watch.exit_code() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
        watch.process.wait()


def test_watch_of_an_unknown_job_or_an_unreachable_sidecar_exits_1_and_a_bad_id_exits_2(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server, watching(server.url, "nope") as watch:
        assert watch.exit_code() == 1
        assert "no job 'nope'" in watch.stderr()
    port = server.port
    with watching(f"http://127.0.0.1:{port}", "job", "--reconnects", "1") as watch:
        assert watch.exit_code() == 1
        assert "reconnections" in watch.stderr()
    with watching(f"http://127.0.0.1:{port}", "../etc") as watch:
        assert watch.exit_code() == 2
        assert watch.stderr().count("\n") == 1


def test_the_reconnect_backoff_doubles_from_the_advised_delay_is_capped_and_bounded() -> None:
    reconnect = Reconnect(attempts=5, first_delay=0.5, max_delay=3.0)
    assert [reconnect.next_delay(None) for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, None]
    advised = Reconnect(attempts=2)
    assert [advised.next_delay(200) for _ in range(3)] == [0.2, 0.4, None]


def test_follow_gives_up_after_its_reconnections_without_really_sleeping() -> None:
    slept: list[float] = []
    transport = httpx.MockTransport(lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    with httpx.Client(transport=transport) as client, pytest.raises(ServerUnreachable, match="3 reconnections"):
        follow(
            "http://sidecar", "job", lambda name, data: False, reconnect=Reconnect(3), sleep=slept.append, client=client
        )
    assert slept == [0.5, 1.0, 2.0]


def test_the_job_view_tracks_stalls_verdicts_and_the_failure_remediation() -> None:
    view = JobView("job")
    view.apply("connected", {"job": {"status": "running", "stage": "TTS", "percent": 40, "etaSeconds": 90}})
    view.apply("job-stalled", {"verdict": "no_progress", "reason": "45 s", "refined": False})
    assert view.stalled and "STALLED" in view.badge and "no_progress" in view.badge
    view.apply("job-stalled", {"verdict": "upstream_errors", "refined": True})
    assert view.verdict == "upstream_errors"
    view.apply("job-recovered", {"reason": "progress resumed"})
    assert not view.stalled and view.badge == ""
    view.apply(
        "job-failed",
        {"status": "failed", "errors": [{"code": "E1", "message": "boom", "remediation": ["check the log"]}]},
    )
    assert view.outcome == "failed" and view.detail == "E1: boom\n  - check the log"
    assert view.notes[0].startswith("STALLED: no_progress") and view.notes[1].startswith("STALLED, diagnosed")


def test_jobs_prints_a_table_of_the_filtered_jobs(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_native(jobs_dir, "render-1", status="running", stage="Render", percent=80)
    write_native(jobs_dir, "done-1", status="completed", stage="Complete", percent=100)
    with live_server(jobs_dir) as server:
        wait_for(lambda: len(server.sidecar.tracker) == 2, what="two jobs")
        assert main(["jobs", "--url", server.url, "--status", "running"]) == 0
        out = capsys.readouterr().out
        assert "render-1" in out and "done-1" not in out and len(out.splitlines()) == 2  # header + one job
        assert main(["jobs", "--url", server.url]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 3
        assert main(["jobs", "--url", server.url, "--status", "bogus"]) == 2
        assert "unknown status" in capsys.readouterr().err
    assert main(["jobs", "--url", server.url]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_piped_watch_says_stalled_and_prints_a_progress_line_while_nothing_changes(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="Render", percent=40, revision=1)
    with (
        live_server(jobs_dir, stall_threshold=1) as server,
        watching(server.url, "job", "--progress-every", "0.5") as watch,
    ):
        watch.expect("job: running Render 40%")
        watch.expect("STALLED no_progress")  # in the snapshot line or the stall's own line, as the race goes
        seen = len(watch.seen)
        watch.expect("elapsed")  # then a progress line while no event comes
        watch.expect("elapsed")
        write_native(jobs_dir, "job", status="completed", stage="Complete", percent=100, revision=2)
        assert watch.exit_code() == 0
    ticks = [line for line in watch.seen[seen:] if line.startswith("job: running Render 40% ETA ")]
    assert len(ticks) >= 2 and all("STALLED no_progress" in line for line in ticks), watch.seen


def test_watch_dash_o_json_prints_each_event_as_the_api_sent_it_then_its_exit(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="Render", percent=40, revision=1)
    with live_server(jobs_dir) as server, watching(server.url, "job", "-o", "json") as watch:
        watch.expect('"event": "connected"')
        api = httpx.get(f"{server.url}/api/jobs/job").json()
        write_native(jobs_dir, "job", status="failed", stage="Render", percent=40, revision=2, error={"message": "x"})
        assert watch.exit_code() == 1
    events = [json.loads(line) for line in watch.seen]
    connected = events[0]["data"]["job"]
    for key in ("id", "status", "stage", "percent", "stalled", "verdict", "createdAt", "outputPath"):
        assert connected[key] == api[key], key
    names = [event["event"] for event in events]
    assert "job-failed" in names and names[-1] == "exit"
    assert events[-1]["data"] == {"jobId": "job", "outcome": "failed", "exitCode": 1}


def test_sigterm_stops_watch_like_ctrl_c(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="running", stage="Render", percent=40, revision=1)
    with live_server(jobs_dir) as server, watching(server.url, "job") as watch:
        watch.expect("job: running Render 40%")
        watch.process.send_signal(signal.SIGTERM)
        assert watch.exit_code() == 128 + signal.SIGTERM
        assert "stopped by SIGTERM" in watch.stderr()


def test_watch_on_a_terminal_draws_a_bar_and_ends_with_the_outcome(jobs_dir: Path) -> None:
    write_native(jobs_dir, "job", status="completed", stage="Complete", percent=100, outputPath="/v/x.mp4")
    with live_server(jobs_dir) as server:
        done = run_in_pty("watch", "job", "--url", server.url)
    assert done.code == 0, done.err
    assert "job completed" in done.text and "output: /v/x.mp4" in done.text and "100%" in done.text


def test_watch_dash_o_wide_stamps_each_piped_line_with_the_time_and_never_cuts_a_line(jobs_dir: Path) -> None:
    output = "/videos/" + "a-long-folder-name/" * 6 + "x.mp4"
    write_native(jobs_dir, "job", status="completed", stage="Complete", percent=100, outputPath=output)
    with live_server(jobs_dir) as server, watching(server.url, "job", "-o", "wide") as watch:
        assert watch.exit_code() == 0
    stamped = [line for line in watch.seen if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d job: ", line)]
    assert stamped and "completed" in stamped[0], watch.seen
    assert f"output: {output}\n" in watch.seen  # longer than 80 columns, on one line, whole
