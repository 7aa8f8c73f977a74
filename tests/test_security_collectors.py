"""Bounded collectors: a hostile output file cannot hang, leak into or starve the sidecar (DESIGN 2.3, issue 11)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from aura_monitor.config import load_settings
from aura_monitor.diagnosis import processes
from aura_monitor.diagnosis.explain import explain_offline
from aura_monitor.diagnosis.media import MAX_BOXES, Probe, inspect_output
from aura_monitor.diagnosis.processes import sample_processes
from tests.support import HANG_S, STARTUP_S, sample, wait_for, write_native
from tests.support.live_server import live_server

T = TypeVar("T")


def within(seconds: float, work: Callable[[], T]) -> tuple[T, float]:
    """Run `work` in a daemon thread; fail (instead of hanging the suite) if it takes longer than `seconds`."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # re-raised in the test thread
            result["error"] = exc

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"], time.monotonic() - began


def ffprobes() -> list[psutil.Process]:
    """ffprobe processes this test process started (directly or not)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ffprobe" in child.name():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def hls_output(folder: Path, name: str) -> Path:
    """An HLS playlist named like a video, whose one segment is a FIFO nobody writes: plain ffprobe hangs on it."""
    folder.mkdir(parents=True, exist_ok=True)
    segment = folder / "segment0.ts"
    if not segment.exists():
        os.mkfifo(segment)
    out = folder / name
    out.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nsegment0.ts\n#EXT-X-ENDLIST\n")
    return out


def box_bomb(path: Path, megabytes: int = 80) -> Path:
    """An MP4 made of nothing but 8-byte 'free' boxes (10 million of them for 80 MB)."""
    chunk = b"\x00\x00\x00\x08free" * (1 << 17)  # 1 MiB
    with path.open("wb") as fh:
        for _ in range(megabytes * 10**6 // len(chunk)):
            fh.write(chunk)
    return path


def completed(jobs_dir: Path, job_id: str, output: Path | str, **fields: object) -> None:
    write_native(jobs_dir, job_id, status="completed", stage="Done", percent=100.0, outputPath=str(output), **fields)


def explain(client: httpx.Client, job_id: str) -> httpx.Response:
    return client.get(f"/api/jobs/{job_id}/explain")


def output_unseen(body: dict[str, Any]) -> list[str]:
    return [entry["fact"] for entry in body["notSeen"] if entry["source"] == "output"]


@pytest.mark.parametrize("name", ["out.mp4", "out.ts"])
def test_an_hls_playlist_output_with_a_fifo_segment_is_answered_in_time_without_leaking_ffprobe_or_threads(
    jobs_dir: Path, tmp_path: Path, name: str
) -> None:
    output = hls_output(tmp_path / "videos", name)
    for i in range(12):
        completed(jobs_dir, f"hls-{i}", output)
    with live_server(jobs_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: client.get("/api/jobs?limit=20").json()["count"] == 12, what="12 jobs ingested")
        for i in range(2):
            assert explain(client, f"hls-{i}").status_code == 200
        warm_threads = threading.active_count()
        for i in range(2, 12):
            began = time.monotonic()
            response = explain(client, f"hls-{i}")
            assert response.status_code == 200
            # A ceiling only an ffprobe left running past its deadline reaches (how fast: bench/, not here).
            assert time.monotonic() - began < HANG_S, "explain must answer within the ffprobe deadline"
            body = response.json()
            assert body["verdict"] in ("output_invalid", "output_missing"), body["verdict"]
        wait_for(lambda: not ffprobes(), timeout=HANG_S, what="no ffprobe process left")
        assert threading.active_count() <= warm_threads + 1


def test_the_periodic_rediagnosis_of_a_stalled_job_with_a_hanging_output_never_piles_up(
    jobs_dir: Path, tmp_path: Path
) -> None:
    output = hls_output(tmp_path / "videos", "live.mp4")
    write_native(jobs_dir, "stuck", stage="Render", percent=40.0, outputPath=str(output))
    with (
        live_server(jobs_dir, stall_threshold=0.5, rediagnose_interval=0.2) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):

        def stall_diagnoses() -> float:
            return sample(client.get("/metrics").text, "aura_diagnoses_total", trigger="stall") or 0.0

        threads: list[int] = []
        most_ffprobes = 0

        def enough() -> bool:
            nonlocal most_ffprobes
            most_ffprobes = max(most_ffprobes, len(ffprobes()))
            threads.append(threading.active_count())
            return stall_diagnoses() >= 6

        wait_for(enough, timeout=30, what="six re-diagnoses of the stalled job")
        assert most_ffprobes <= 1, "one job is diagnosed once at a time"
        assert max(threads) - threads[0] <= 4, "threads must not grow with each re-diagnosis"
    wait_for(lambda: not ffprobes(), timeout=HANG_S, what="no ffprobe process left after stop")


def test_an_ffprobe_that_hangs_is_killed_with_everything_it_started_at_the_deadline(
    media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, pids = tmp_path / "bin", tmp_path / "pids"
    bin_dir.mkdir()
    fake = bin_dir / "ffprobe"
    # A stand-in that hangs like ffprobe on a dead mount, with a child of its own to prove the group kill.
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pids}\necho $$ >> {pids}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    # The stand-in sleeps 300 s: returning at all (within HANG_S) shows it was killed at its deadline.
    evidence, _ = within(HANG_S, lambda: inspect_output(str(media["valid"]), probe_timeout=0.5))
    assert evidence.probe_error and "did not answer within the 0.5 s deadline and was killed" in evidence.probe_error
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(pid) for pid in started), timeout=HANG_S, what="ffprobe and its child killed")


def test_a_box_bomb_mp4_is_explained_in_bounded_time_and_memory(jobs_dir: Path, tmp_path: Path) -> None:
    bomb = box_bomb(tmp_path / "bomb.mp4")
    completed(jobs_dir, "bomb", bomb)
    with live_server(jobs_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: client.get("/api/jobs/bomb").status_code == 200, what="job ingested")
        me = psutil.Process()
        before = me.memory_info().rss
        # RUSAGE_CHILDREN sums every child this pytest process ever reaped: only this explain's share counts.
        children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        peak = before
        with ThreadPoolExecutor(1) as pool:
            began = time.monotonic()
            pending = pool.submit(explain, client, "bomb")
            while not pending.done():  # the sidecar is in this process: sample its RSS while it explains
                peak = max(peak, me.memory_info().rss)
                time.sleep(0.005)
            took = time.monotonic() - began
            response = pending.result()
    assert response.status_code == 200
    print(f"\nbox bomb explain: {took * 1000:.0f} ms, RSS growth {(peak - before) / 2**20:.1f} MiB")
    assert took < HANG_S, f"explain of a box bomb took {took:.1f} s"  # bounded by the box cap, not by time
    assert peak - before < 50 * 2**20, f"RSS grew {(peak - before) / 2**20:.0f} MiB"
    unseen = " ".join(output_unseen(response.json()))
    assert f"stopped after {MAX_BOXES} top-level boxes" in unseen and "ffprobe was not run" in unseen
    spent = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - children_cpu
    assert spent < 60, f"children used {spent:.0f} s of CPU"  # no ffprobe spent minutes on it


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("directory", "is a directory, not a regular file"),
        ("device", "is a character device, not a regular file"),
        ("symlink", "is a symbolic link, not a regular file"),
        ("text", "does not have a video container extension"),
    ],
)
def test_an_output_that_is_not_a_regular_video_file_is_listed_under_not_seen_with_the_reason(
    jobs_dir: Path, tmp_path: Path, media: dict[str, Path], kind: str, reason: str
) -> None:
    output = tmp_path / ("notes.txt" if kind == "text" else "out.mp4")
    if kind == "fifo":
        os.mkfifo(output)
    elif kind == "directory":
        output.mkdir()
    elif kind == "device":
        os.mknod(output, 0o600 | 0o020000, os.makedev(1, 3))  # a character device (/dev/null's numbers)
    elif kind == "symlink":
        output.symlink_to(media["valid"])
    else:
        output.write_text("not a video\n")
    completed(jobs_dir, "odd", output)
    diagnosis, _ = within(HANG_S, lambda: explain_offline(load_settings(jobs_dir=jobs_dir), "odd"))
    unseen = output_unseen(diagnosis.body)
    assert any(reason in fact and str(output) in fact for fact in unseen), unseen
    assert not ffprobes()


# 50 explains at once from another process (client threads in this process would compete with the server
# for the GIL and measure the test, not the sidecar); one JSON line per answer.
BURST = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx
url, count = sys.argv[1], int(sys.argv[2])
with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=count)) as client:
    def one(i):
        began = time.monotonic()
        r = client.get(f"/api/jobs/busy-{i}/explain")
        return {"status": r.status_code, "took": time.monotonic() - began, "type": r.headers.get("content-type"),
                "retryAfter": r.headers.get("retry-after"), "detail": r.json().get("detail")}
    with ThreadPoolExecutor(count) as pool:
        for answer in pool.map(one, range(count)):
            print(json.dumps(answer))
"""


def test_fifty_concurrent_explains_leave_every_healthz_and_metrics_call_answered(
    jobs_dir: Path, media: dict[str, Path], tmp_path: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(50):
        output = shutil.copy(media["valid"], videos / f"v{i}.mp4")
        # Running with a live worker pid: every diagnosis samples CPU over its window and probes the output.
        write_native(jobs_dir, f"busy-{i}", percent=60.0, outputPath=str(output), worker={"pid": os.getpid()})
    with live_server(jobs_dir) as server, httpx.Client(base_url=server.url, timeout=30) as ops:
        wait_for(lambda: ops.get("/api/jobs?limit=100").json()["count"] == 50, what="50 jobs ingested")
        healthz: list[float] = []
        metrics: list[float] = []
        burst = subprocess.Popen(
            [sys.executable, "-c", BURST, server.url, "50"], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        try:
            # A ceiling only a hang reaches: it includes starting the burst's Python (17 s at load 20).
            deadline = time.monotonic() + STARTUP_S + 60
            while burst.poll() is None:
                assert time.monotonic() < deadline, "the explain burst did not finish"
                for path, into in (("/healthz", healthz), ("/metrics", metrics)):
                    began = time.monotonic()
                    assert ops.get(path, timeout=HANG_S).status_code == 200  # each call answered, none starved
                    into.append(time.monotonic() - began)
            out, _ = burst.communicate(timeout=10)
        finally:
            if burst.poll() is None:
                burst.kill()
                burst.wait()
    assert burst.returncode == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 50
    for answer in results:
        assert answer["status"] in (200, 503), answer
        if answer["status"] == 503:
            assert answer["type"].startswith("application/problem+json")
            assert int(answer["retryAfter"]) >= 1 and "retry in" in answer["detail"]
    answered = [a for a in results if a["status"] == 200]
    assert len(answered) >= 20
    p95 = statistics.quantiles([a["took"] for a in results], n=20)[-1]
    print(
        f"\n50 explains: {len(answered)} answered, {50 - len(answered)} busy (503); explain p95 {p95 * 1000:.0f} ms; "
        f"/metrics p50 {statistics.median(metrics) * 1000:.1f} ms max {max(metrics) * 1000:.1f} ms "
        f"({len(metrics)} calls); /healthz p50 {statistics.median(healthz) * 1000:.1f} ms "
        f"max {max(healthz) * 1000:.1f} ms"
    )
    # A sanity bound, not a speed test: probes that waited on the explains would take seconds each.
    assert statistics.median(healthz) < 1.0 and statistics.median(metrics) < 1.0


def test_a_repeated_explain_of_an_unchanged_job_reuses_one_diagnosis(
    jobs_dir: Path, media: dict[str, Path], tmp_path: Path
) -> None:
    output = shutil.copy(media["valid"], tmp_path / "same.mp4")
    completed(jobs_dir, "same", output)
    with live_server(jobs_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        wait_for(lambda: client.get("/api/jobs/same").status_code == 200, what="job ingested")

        def counts() -> tuple[float | None, float | None]:
            text = client.get("/metrics").text
            return (
                sample(text, "aura_diagnoses_total", trigger="explain"),
                sample(text, "aura_explain_requests_total", result="cached"),
            )

        first, second = explain(client, "same").json(), explain(client, "same").json()
        assert first == second
        assert counts() == (1.0, 1.0)
        # The output file changes (its mtime), the record does not: the cache key holds the file too.
        os.utime(output, ns=(time.time_ns(), time.time_ns() + 10**9))
        explain(client, "same")
        assert counts() == (2.0, 1.0)
        write_native(jobs_dir, "same", status="completed", stage="Archived", percent=100.0, outputPath=str(output))
        wait_for(lambda: client.get("/api/jobs/same").json()["stage"] == "Archived", what="the new record read")
        explain(client, "same")
        assert counts() == (3.0, 1.0)


def test_a_real_rendered_video_is_still_probed_with_its_duration_and_size(
    media: dict[str, Path], tmp_path: Path
) -> None:
    remuxed = {}
    for ext in ("mkv", "ts", "avi", "mov"):  # each forces its own demuxer (matroska, mpegts, avi, mov)
        remuxed[ext] = tmp_path / f"valid.{ext}"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(media["valid"]), "-c", "copy", str(remuxed[ext])],
            check=True,
            timeout=60,
        )
    for path in (media["valid"], *remuxed.values()):
        evidence = inspect_output(str(path))
        assert evidence.probed and evidence.probe_error is None and evidence.unprobed is None, evidence
        assert evidence.duration_s is not None and abs(evidence.duration_s - 2.0) < 0.2
        assert (evidence.width, evidence.height) == (160, 90)
    mkv = remuxed["mkv"]
    # The demuxer comes from the extension, never from the content: Matroska named .mp4 is not read as Matroska.
    disguised = shutil.copy(mkv, tmp_path / "disguised.mp4")
    evidence = inspect_output(str(disguised))
    assert not evidence.probed and evidence.probe_error


def test_a_probe_closes_its_file_and_process_even_when_never_finished(media: dict[str, Path], tmp_path: Path) -> None:
    # A fresh copy: an unchanged file probed before is answered from the probe cache, with no ffprobe.
    probe = Probe.start(str(shutil.copy(media["valid"], tmp_path / "fresh.mp4")))
    fd = probe.fd
    assert fd is not None and probe.proc is not None
    probe.close()
    assert probe.proc.returncode is not None
    with pytest.raises(OSError):
        os.fstat(fd)


def test_concurrent_diagnoses_of_one_busy_process_share_one_cpu_sample(tmp_path: Path) -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: psutil.Process(spinner.pid).cpu_times().user > 0.05, timeout=HANG_S, what="the spinner busy")
        record_time = time.time()
        measured = processes.windows_measured
        with ThreadPoolExecutor(6) as pool:
            samples = list(pool.map(lambda _: sample_processes([("worker", spinner.pid)], 0.3, record_time), range(6)))
    finally:
        spinner.kill()
        spinner.wait()
    assert processes.windows_measured - measured == 1, "six callers, one CPU window"
    deltas = {evidence.cpu_delta_s for [evidence] in samples}
    assert len(deltas) == 1 and next(iter(deltas)), deltas
    assert all(evidence.window_s == 0.3 and evidence.exists for [evidence] in samples)


def test_concurrent_diagnoses_count_children_from_one_process_table_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long reuse time: the six callers may be minutes apart on a loaded host and must still share one scan.
    monkeypatch.setattr(processes, "CHILDREN_TTL_S", 600.0)
    monkeypatch.setattr(processes, "_children", None)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; [subprocess.Popen(['sleep', '60']) for _ in 'ab']; "
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        scans = processes.process_scans
        with ThreadPoolExecutor(6) as pool:
            samples = list(pool.map(lambda _: sample_processes([("worker", parent.pid)], 0.0, None), range(6)))
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()
    assert processes.process_scans - scans == 1, "six callers, one scan of the process table"
    assert [evidence.children for [evidence] in samples] == [2] * 6
