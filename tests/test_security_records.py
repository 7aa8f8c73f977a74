"""Hostile records, clock steps, pauses and terminals (issue 11, deliverables 3, 8, 9), each done for real.

A real server beside hostile job.json files; a real `aura-monitor serve` under Debian's libfaketime for the
wall-clock step; SIGSTOP/SIGCONT of a real sidecar while writers keep going; the CLI piped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import Transition
from aura_monitor.records import parse_record
from tests.support import HANG_S, STARTUP_S, sample, wait_for, write_native
from tests.support.live_server import SseClient, live_server
from tests.support.live_stack import aura_monitor_argv, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
# A small threshold so a stall or a pause twice its length stays a few seconds; no periodic rescan, so
# only the pause handling can save the healthy jobs after SIGCONT.
SERVE = aura_monitor_argv("serve", "--stall-threshold", "3", "--rescan-interval", "300")
SERVE += ["--log-level", "warning"]
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
HEALTHY = ("healthy-1", "healthy-2", "healthy-3")
# Raw JSON, because json.dumps cannot write a lone surrogate escape or NaN the way a hostile writer does.
SURROGATES = (
    '{"schema": "aura-monitor/job@1", "id": "hostile-text", "status": "running", "stage": "Ren\\ud800der",'
    ' "percent": 40, "message": "half \\udfff a pair", "outputPath": "/tmp/out\\ud800.mp4",'
    ' "logs": ["line \\ud800"], "worker": {"pid": -1}, "encoder": {"pid": 0}, "stagePercent": -5,'
    ' "error": {"message": "\\ud800"}}'
)
HOSTILE_RAW = {
    "hostile-text": SURROGATES,
    "hostile-time": '{"schema": "aura-monitor/job@1", "id": "hostile-time", "status": "running", "percent": 5,'
    ' "createdAt": "0001-01-01T00:00:00+23:59"}',
    "hostile-nan": '{"schema": "aura-monitor/job@1", "id": "hostile-nan", "status": "running", "percent": NaN}',
    "hostile-huge": '{"schema": "aura-monitor/job@1", "id": "hostile-huge", "status": "running", "percent": 1e999,'
    ' "revision": 1' + "0" * 400 + "}",
    "hostile-aura": '{"Id": "hostile-aura", "Status": 1, "Percent": 30, "Stage": "TTS\\udc80",'
    ' "CreatedUtc": "9999-12-31T23:59:59-23:59", "CurrentProgress": {"StagePercent": NaN}}',
}


def _write_raw(jobs_dir: Path, job_id: str, text: str) -> None:
    folder = jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "job.json.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / "job.json")


def test_parsing_replaces_lone_surrogates_and_ignores_impossible_pids_and_percents_with_a_note() -> None:
    record = parse_record(SURROGATES.encode())
    assert record.stage == "Ren\ufffdder"
    assert record.message == "half \ufffd a pair"
    assert record.logs_tail == ("line \ufffd",)
    assert record.worker_pid is None and record.encoder_pid is None and record.stage_percent is None
    notes = " ".join(record.inconsistencies)
    assert "record.worker.pid is -1" in notes and "record.encoder.pid is 0" in notes
    assert "record.stagePercent is -5" in notes
    json.dumps(record.stage).encode("utf-8")  # encodable: the 500 came from here


@pytest.mark.parametrize(
    ("job_id", "field"),
    [("hostile-time", "createdAt"), ("hostile-nan", "percent"), ("hostile-huge", "percent")],
)
def test_parsing_refuses_out_of_range_times_and_non_finite_numbers_naming_the_field(job_id: str, field: str) -> None:
    with pytest.raises(Exception, match=rf"record\.{field}") as caught:
        parse_record(HOSTILE_RAW[job_id].encode())
    assert type(caught.value).__name__ in ("RecordError", "RecordUnreadable")


def test_one_hostile_record_of_each_kind_beside_healthy_jobs_breaks_no_route_and_no_stream(jobs_dir: Path) -> None:
    for job_id in HEALTHY:
        write_native(jobs_dir, job_id, percent=20.0)
    for job_id, text in HOSTILE_RAW.items():
        _write_raw(jobs_dir, job_id, text)
    with live_server(jobs_dir, unreadable_grace=0.5) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        wait_for(lambda: server.sidecar.ready, what="sidecar ready")
        # The view-failure count is the process's (views are pure functions), so earlier in-process tests
        # may have added to it: this test judges what its own requests add.
        failed_views_before = sample(http.get("/metrics").text, "aura_view_failures_total") or 0

        def listed() -> dict[str, Any] | None:
            answer = http.get("/api/jobs")
            assert answer.status_code == 200, answer.text
            jobs = {job["id"]: job for job in answer.json()["jobs"]}
            return jobs if set(HEALTHY) | {"hostile-text"} <= set(jobs) else None

        jobs = wait_for(listed, what="healthy and sanitized jobs listed")
        assert jobs["hostile-text"]["stage"] == "Ren\ufffdder"
        assert any("worker.pid is -1" in note for note in jobs["hostile-text"]["inconsistencies"])
        queue = http.get("/api/queue")
        assert queue.status_code == 200 and set(HEALTHY) <= {job["id"] for job in queue.json()["jobs"]}

        for job_id in (*HEALTHY, *HOSTILE_RAW):
            for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/progress", f"/api/jobs/{job_id}/explain"):
                answer = http.get(path)
                assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.text[:300]}"

        def unreadable_explained() -> bool:
            answer = http.get("/api/jobs/hostile-time/explain")
            return answer.status_code == 200 and answer.json()["verdict"] == "record_unreadable"

        wait_for(unreadable_explained, what="the out-of-range time explained as record_unreadable")
        body = http.get("/api/jobs/hostile-time/explain").json()
        assert "createdAt" in json.dumps(body), "the reason names the refused field"

        stream = SseClient(server.port, "/api/events")
        try:
            connected = stream.wait_for_event("connected")
            snapshot = {job["id"] for job in connected.data["jobs"]}
            assert set(HEALTHY) | {"hostile-text"} <= snapshot
        finally:
            stream.close()
        metrics = http.get("/metrics").text
        failed_views = (sample(metrics, "aura_view_failures_total") or 0) - failed_views_before
        assert failed_views == 0, "nothing left out: every hostile value was handled"
        assert sample(metrics, "aura_listener_failures_total") == 0


@pytest.mark.parametrize("last_event_id", ["x-²", "x-٣", "boot-12abc", "-", "\u00e9"])
def test_an_unusable_last_event_id_gets_a_resync_not_a_500(jobs_dir: Path, last_event_id: str) -> None:
    write_native(jobs_dir, "healthy-1")
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("healthy-1"), what="job discovered")
        stream = SseClient(server.port, f"/api/events?lastEventId={quote(last_event_id)}")
        try:
            connected = stream.wait_for_event("connected")
            assert stream.response.status == 200
            assert connected.data.get("resync") is True
            assert "healthy-1" in {job["id"] for job in connected.data["jobs"]}
        finally:
            stream.close()


def test_a_listener_that_raises_is_counted_and_the_others_still_get_every_change() -> None:
    tracker = Tracker(Thresholds(default=5))
    first: list[Transition] = []
    last: list[Transition] = []

    def broken(batch: Any) -> None:
        raise RuntimeError("listener bug")

    tracker.subscribe(lambda batch: first.extend(batch))
    tracker.subscribe(broken)
    tracker.subscribe(lambda batch: last.extend(batch))
    record = parse_record(
        json.dumps({"schema": "aura-monitor/job@1", "id": "a", "status": "running", "percent": 1}).encode()
    )
    tracker.apply("/jobs/a/job.json", record, 1000.0)
    tracker.apply("/jobs/a/job.json", record.__class__(**{**_fields(record), "percent": 2.0}), 1001.0)
    assert [t.kind for t in first] == [t.kind for t in last] and len(last) == 2
    assert tracker.listener_failures == 2
    assert tracker.get("a") is not None and tracker.get("a").record.percent == 2.0  # type: ignore[union-attr]


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


# -- real subprocesses: clock steps and pauses -------------------------------------------------------


@contextmanager
def _serve(
    jobs_dir: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*SERVE, "--jobs-dir", str(jobs_dir), "--port", str(port)],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200,
            timeout=STARTUP_S,
            what="serve ready",
            ignoring=(httpx.HTTPError,),
        )
        yield proc, url
    finally:
        stop_process(proc)


def _jobs(url: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{url}/api/jobs", timeout=10)
    assert answer.status_code == 200, answer.text
    return {job["id"]: job for job in answer.json()["jobs"]}


class _Writers:
    """Healthy progress written to every job every `interval` s on a thread, until stopped."""

    def __init__(self, jobs_dir: Path, job_ids: tuple[str, ...], interval: float = 0.25) -> None:
        self.jobs_dir, self.job_ids, self.interval = jobs_dir, job_ids, interval
        self.percent = 1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.percent = min(99.0, self.percent + 0.1)
            for job_id in self.job_ids:
                write_native(self.jobs_dir, job_id, percent=round(self.percent, 1), lastProgressAt=None)

    def __enter__(self) -> _Writers:
        for job_id in self.job_ids:
            write_native(self.jobs_dir, job_id, percent=self.percent)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _faketime_env(offset_file: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }


def test_libfaketime_steps_the_wall_clock_of_a_subprocess_but_not_its_monotonic_clock(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("-600\n")
    probe = "import time; print(time.time(), time.monotonic())"
    env = {**os.environ, **_faketime_env(offset)}
    faked = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    wall, mono = (float(x) for x in faked.stdout.split())
    assert 590 < time.time() - wall < 610
    assert abs(time.monotonic() - mono) < 30, "DONT_FAKE_MONOTONIC must leave CLOCK_MONOTONIC alone"


def test_stepping_the_sidecars_wall_clock_back_600_s_does_not_hide_a_real_stall(jobs_dir: Path, tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("+0\n")
    with _serve(jobs_dir, tmp_path / "serve.log", _faketime_env(offset)) as (_, url):
        with _Writers(jobs_dir, ("stuck",)):
            wait_for(lambda: "stuck" in _jobs(url), STARTUP_S, "job discovered")
        offset.write_text("-600\n")  # the writer stopped: a real stall begins; the clock goes back 10 minutes
        began = time.monotonic()
        wait_for(
            lambda: _jobs(url)["stuck"]["stalled"], timeout=HANG_S, what="the stall flagged despite the clock step"
        )
        assert time.monotonic() - began < 10  # threshold 3 s, not 600 s later
        assert _jobs(url)["stuck"]["secondsSinceProgress"] >= 3


def test_stepping_the_sidecars_wall_clock_forward_600_s_invents_no_stall_and_no_600_s_silence(
    jobs_dir: Path, tmp_path: Path
) -> None:
    offset = tmp_path / "offset"
    offset.write_text("+0\n")
    jobs = ("busy-1", "busy-2")
    with _serve(jobs_dir, tmp_path / "serve.log", _faketime_env(offset)) as (_, url), _Writers(jobs_dir, jobs):
        write_native(jobs_dir, "stuck", percent=10.0)  # written once: a real stall, 3 s from now
        wait_for(lambda: {*jobs, "stuck"} <= set(_jobs(url)), STARTUP_S, "jobs discovered")
        stream = SseClient(int(url.rsplit(":", 1)[1]), "/api/events")
        try:
            stream.wait_for_event("connected")
            offset.write_text("+600\n")
            deadline = time.monotonic() + 6  # twice the threshold of observation, all of it with healthy writes
            while time.monotonic() < deadline:
                listed = _jobs(url)
                assert not any(listed[j]["stalled"] for j in jobs), listed
                time.sleep(0.2)
            # A diagnosis refines the verdict with a second job-stalled (refined: true): count the first only.
            stalled = [e.data for e in stream.events if e.name == "job-stalled" and not e.data["refined"]]
            assert [e["jobId"] for e in stalled] == ["stuck"], stalled
            # The silence is measured, not read off the stepped wall clock (which would say ~600 s).
            assert 3 <= stalled[0]["secondsSinceProgress"] < 60, stalled[0]
            assert 3 <= listed["stuck"]["secondsSinceProgress"] < 60, listed["stuck"]
        finally:
            stream.close()


def test_after_sigstop_and_sigcont_no_healthy_job_is_ever_reported_stalled(jobs_dir: Path, tmp_path: Path) -> None:
    jobs = tuple(f"busy-{n}" for n in range(8))
    log = tmp_path / "serve.log"
    with _serve(jobs_dir, log) as (proc, url), _Writers(jobs_dir, jobs):
        wait_for(lambda: set(jobs) <= set(_jobs(url)), STARTUP_S, "jobs discovered")
        port = int(url.rsplit(":", 1)[1])
        stream = SseClient(port, "/api/events")
        try:
            stream.wait_for_event("connected")
            os.kill(proc.pid, signal.SIGSTOP)
            paused_until = time.monotonic() + 6  # twice the 3 s threshold, writers going all along
            while time.monotonic() < paused_until:
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGCONT)
            watch_until = time.monotonic() + 5
            while time.monotonic() < watch_until:
                listed = _jobs(url)
                assert not [j for j in jobs if listed[j]["stalled"]], "healthy jobs reported stalled after SIGCONT"
                time.sleep(0.1)
            stalled = [e for e in stream.events if e.name == "job-stalled"]
            assert not stalled, [e.data for e in stalled]
            assert any(e.name == "step-progress" for e in stream.events if e.mono > paused_until)
            pauses = sample(httpx.get(f"{url}/metrics", timeout=10).text, "aura_stall_timer_pauses_total")
            assert pauses is not None and pauses >= 1
        finally:
            stream.close()
    assert "did not run for" in log.read_text(), "the timer noticed the pause and let the ingest catch up"


# -- terminals ---------------------------------------------------------------------------------------

HOSTILE_TEXT = "\x1b]52;c;cGF5bG9hZA==\x07\x1b[2J[bold red]owned[/] [link=http://evil]x[/link]\x9b31m"


def _assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output, repr(output)


def test_jobs_watch_and_explain_print_escape_sequences_and_markup_from_records_inert(jobs_dir: Path) -> None:
    write_native(jobs_dir, "evil", stage=HOSTILE_TEXT, message=HOSTILE_TEXT, logs=[HOSTILE_TEXT])
    write_native(
        jobs_dir,
        "evil-done",
        status="completed",
        percent=100.0,
        stage=HOSTILE_TEXT,
        outputPath=f"/tmp/{HOSTILE_TEXT}.mp4",
    )
    env = {**os.environ, "COLUMNS": "400", "TERM": "xterm-256color"}
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("evil-done"), what="jobs discovered")
        cli = [sys.executable, "-m", "aura_monitor"]
        runs = {
            "jobs": subprocess.run(
                [*cli, "jobs", "--url", server.url], env=env, capture_output=True, text=True, timeout=60
            ),
            "watch": subprocess.run(
                [*cli, "watch", "evil-done", "--url", server.url], env=env, capture_output=True, text=True, timeout=60
            ),
            "explain": subprocess.run(
                [*cli, "explain", "evil", "--jobs-dir", str(jobs_dir)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            ),
        }
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.stderr}"
        _assert_inert(run.stdout + run.stderr)
    assert "[bold red]owned[/]" in runs["jobs"].stdout, "markup is shown as text, not applied"
    assert "[bold red]owned[/]" in runs["watch"].stdout
    assert "[bold red]owned[/]" in runs["explain"].stdout
