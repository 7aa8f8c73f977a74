"""`aura-monitor demo`: every fault of the reference pipeline yields its verdict from the live sidecar soon
after it shows and keeps it; piped, it says what happens; SIGTERM stops every process it started."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil

from aura_monitor.cli.demo import demo_jobs
from aura_monitor.cli.demo_judge import HOLD_SHARE, REACH_WITHIN_S
from tests.support import HANG_S, wait_for
from tests.support.live_stack import free_port

DEMO = [sys.executable, "-m", "aura_monitor", "demo"]
PROGRESS_LINE = re.compile(r"^demo +(\d+) s: ")


def test_demo_once_reaches_every_verdict_soon_after_the_fault_and_holds_it(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [*DEMO, "--once", "--hold", "20", "--port", str(port), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-3000:]
    rows = {}
    for job in demo_jobs():
        row = next(line for line in out.splitlines() if line.startswith(f"│ {job.name} "))
        rows[job.name] = [cell.strip() for cell in row.strip("│").split("│")]
        name, expected, fault_at, reached_after, held, result_cell = rows[job.name]
        assert expected == job.expected
        assert result_cell == "ok", row
        # The share of samples after the verdict came that still showed it, and how many there were.
        share, samples = re.fullmatch(r"(\d+)% of (\d+)", held).groups()  # type: ignore[union-attr]
        assert int(share) >= HOLD_SHARE * 100 and int(samples) >= 1, row
        if fault_at != "-":
            assert float(reached_after.removesuffix(" s")) <= REACH_WITHIN_S, row
    # Every stalling fault was watched for a while after its verdict, not judged at one instant.
    for name in ("hang-encoder", "crash-worker", "stderr-deadlock", "upstream-errors"):
        assert int(rows[name][4].split(" of ")[1]) >= 10, rows[name]
    # Piped, the demo keeps printing plain progress lines (one every 5 s: a gap of 30 s is a demo that stopped
    # printing, not a slow machine).
    times = [int(m.group(1)) for line in out.splitlines() if (m := PROGRESS_LINE.match(line))]
    assert times and times[0] <= HANG_S, out[:2000]
    assert max(b - a for a, b in itertools.pairwise(times)) <= HANG_S, times
    assert not list((tmp_path / "jobs").glob("*/requests/*.json")), "no control request left behind"


def _alive(procs: Iterable[psutil.Process]) -> list[tuple[int, str, str]]:
    """(pid, name, status) of the processes still alive; one that ends while asked (an ffprobe) is not."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and (status := proc.status()) != psutil.STATUS_ZOMBIE:
                alive.append((proc.pid, proc.name(), status))
        except psutil.Error:
            continue
    return alive


def test_sigterm_stops_the_demo_and_every_process_it_started_even_a_stopped_encoder(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen(
        [*DEMO, "--port", str(port), "--dir", str(tmp_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: dict[int, psutil.Process] = {}
    try:

        def is_stopped_ffmpeg(proc: psutil.Process) -> bool:
            try:
                return proc.name() == "ffmpeg" and proc.status() == psutil.STATUS_STOPPED
            except psutil.Error:  # it ended (the crash-worker fault kills its render and ffmpeg)
                return False

        def stopped_encoder() -> bool:
            for proc in psutil.Process(demo.pid).children(recursive=True):
                seen.setdefault(proc.pid, proc)
            return any(is_stopped_ffmpeg(proc) for proc in seen.values())

        try:
            wait_for(stopped_encoder, 150, "the hang-encoder fault to SIGSTOP its ffmpeg", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the demo said:\n{(tmp_path / 'demo.out').read_text()[-3000:]}") from None
        for proc in psutil.Process(demo.pid).children(recursive=True):
            seen.setdefault(proc.pid, proc)
        names = sorted(name for _, name, _ in _alive(seen.values()))
        # The worker, its render processes (each in a session of its own) and their encoders.
        assert names.count("ffmpeg") >= 2 and sum(n.startswith("python") for n in names) >= 3, names
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
        assert code == 128 + signal.SIGTERM, (tmp_path / "demo.out").read_text()[-3000:]
        survivors = [f"{pid} {name} {status}" for pid, name, status in _alive(seen.values())]
        assert survivors == [], survivors
        said = (tmp_path / "demo.out").read_text()
        assert "demo stopped by SIGTERM" in said and "demo verdicts" in said, said[-3000:]
    finally:
        for proc in seen.values():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    proc.send_signal(sig)
                except psutil.Error:
                    break
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        log.close()
