"""SIGTERM to `aura-monitor worker` (what `timeout`, `docker stop` and systemd send) stops every child,
even a SIGSTOPped ffmpeg: it is resumed first, so it quits on its own instead of waiting for a kill."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from tests.support import wait_for
from tests.support.board import enqueue
from tests.support.cli import Running, run_piped
from tests.support.pipeline import kill_pid, process_state, record, render_encoder

# Long enough that a stopped ffmpeg left to its grace period would keep the worker past the deadline below.
STOP_GRACE_S = 40


def test_sigterm_to_the_worker_stops_its_render_and_a_stopped_ffmpeg_without_waiting_out_the_grace(
    jobs_dir: Path,
) -> None:
    job_dir = jobs_dir / enqueue(jobs_dir, "hung", "--duration", "6", "--fault", "hang-encoder")
    worker = Running("worker", "--jobs-dir", str(jobs_dir), "--poll-interval", "0.1", "--stop-grace", str(STOP_GRACE_S))
    encoder_pid = render_pid = None
    try:
        encoder = wait_for(lambda: render_encoder(job_dir), timeout=60, what="the render's ffmpeg")
        encoder_pid, render_pid = encoder["pid"], record(job_dir)["worker"]["pid"]
        wait_for(lambda: process_state(encoder_pid) == "T", timeout=60, what="ffmpeg SIGSTOPped by the fault")

        asked = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.wait(STOP_GRACE_S - 10) == 0
        took = time.monotonic() - asked

        assert process_state(render_pid) is None and process_state(encoder_pid) is None
        assert record(job_dir)["status"] == "failed"  # retryable: the worker was stopped, not the job
        assert took < STOP_GRACE_S - 10
    finally:
        worker.close()
        kill_pid(encoder_pid)
        kill_pid(render_pid)


def test_a_worker_on_a_taken_metrics_port_is_one_line_and_exit_2(jobs_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_piped("worker", "--jobs-dir", str(jobs_dir), "--metrics-port", str(port), "--exit-when-idle")
    assert done.code == 2 and done.err.splitlines()[-1].startswith("aura-monitor worker: error: cannot serve /metrics")
    assert "Traceback" not in done.err and "--metrics-port" in done.err
