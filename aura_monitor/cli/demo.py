"""`aura-monitor demo`: the sidecar, the reference worker and a set of jobs (two healthy, one per fault),
with thresholds scaled down so every failure shows within a minute; `--once` checks every verdict."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..api.app import create_app
from ..clock import SystemClock
from ..config import load_settings
from ..exceptions import JobNotFound
from ..jobs.eta import eta_seconds
from ..jobs.verdicts import Verdict
from ..pipeline.enqueue import enqueue_job
from ..pipeline.faults import Fault
from ..pipeline.request import RenderRequest
from ..sidecar import Sidecar

# Production thresholds are 45 s / 180 s / 10 min; the demo divides them so it fits in a few minutes.
DEMO_THRESHOLDS = {"stall_threshold": 8.0, "finalizing_threshold": 30.0, "queued_threshold": 60.0}
FAULT_SCALE = 0.4  # slow-finalize then lasts 20 s: past the 8 s default, inside the 30 s finalizing threshold
ONCE_TIMEOUT_S = 170.0

EXPECTED: dict[Fault | None, Verdict] = {
    None: Verdict.COMPLETED,
    Fault.DROP_COMPLETION: Verdict.COMPLETION_NOT_PROPAGATED,
    Fault.CAP_PROGRESS: Verdict.PROGRESS_CAPPED,
    Fault.NO_PROGRESS_SYNC: Verdict.PROGRESS_NOT_REPORTED,
    Fault.HANG_ENCODER: Verdict.PROCESS_HUNG,
    Fault.CRASH_WORKER: Verdict.PROCESS_DEAD,
    Fault.STDERR_DEADLOCK: Verdict.PROCESS_HUNG,
    Fault.SLOW_FINALIZE: Verdict.FINALIZING,
    Fault.UPSTREAM_ERRORS: Verdict.UPSTREAM_ERRORS,
}


@dataclass
class DemoJob:
    name: str
    fault: Fault | None
    job_id: str = ""
    verdict: str | None = None
    reached_at: float | None = None
    ever_stalled: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def expected(self) -> str:
        return EXPECTED[self.fault]

    @property
    def passed(self) -> bool:
        return self.reached_at is not None and not (self.fault is Fault.SLOW_FINALIZE and self.ever_stalled)


def demo_jobs() -> list[DemoJob]:
    return [DemoJob("healthy-1", None), DemoJob("healthy-2", None)] + [DemoJob(f.value, f) for f in Fault]


class Demo:
    """Runs everything in one process tree and keeps the verdict of each demo job."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.jobs_dir = base / "jobs"
        self.output_dir = base / "videos"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.settings = load_settings(jobs_dir=self.jobs_dir, port=port, rediagnose_interval=2.0, **DEMO_THRESHOLDS)
        self.sidecar = Sidecar(self.settings)
        self.jobs = demo_jobs()
        self.started = time.time()
        self._server: uvicorn.Server | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        app = create_app(self.sidecar)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.settings.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, name="demo-server", daemon=True).start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sidecar did not start on port {self.settings.port} (port in use?)")
            time.sleep(0.02)
        clock = SystemClock()
        for job in self.jobs:
            request = RenderRequest(
                duration_s=4.0, fault=job.fault, fault_scale=FAULT_SCALE, topic=f"aura-monitor demo: {job.name}"
            )
            job.job_id = enqueue_job(self.jobs_dir, request, clock=clock, job_id=f"demo-{job.name}")
        log = open(self.base / "worker.log", "wb")  # noqa: SIM115 - the worker writes to it until stop()
        self._worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aura_monitor",
                "worker",
                "--jobs-dir",
                str(self.jobs_dir),
                "--concurrency",
                str(len(self.jobs)),
                "--output-dir",
                str(self.output_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._judge, name="demo-judge", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None and self._worker.poll() is None:
            # The hang-encoder fault leaves a stopped ffmpeg: wake the whole group so it can die.
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.killpg(self._worker.pid, sig)
                except ProcessLookupError:
                    break
            try:
                self._worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._worker.pid, signal.SIGKILL)
                self._worker.wait()
        self._kill_leftovers()
        if self._server is not None:
            self._server.should_exit = True

    def _kill_leftovers(self) -> None:
        """Render processes run in their own sessions (so a crash fault kills only itself): end them too."""
        for job in self.jobs:
            state = self.sidecar.tracker.get(job.job_id)
            record = state.record if state else None
            for pid in (record.worker_pid, record.encoder_pid) if record else ():
                if pid:
                    for sig in (signal.SIGCONT, signal.SIGKILL):
                        try:
                            os.kill(pid, sig)
                        except (ProcessLookupError, PermissionError):
                            break

    # -- judging -----------------------------------------------------------------------------------
    def _judge(self) -> None:
        while not self._stop.is_set():
            for job in self.jobs:
                if self._stop.is_set():
                    return
                state = self.sidecar.tracker.get(job.job_id)
                if state is None or state.record is None:
                    continue
                job.ever_stalled = job.ever_stalled or state.stalled
                if job.reached_at is not None and job.fault is not Fault.SLOW_FINALIZE:
                    continue
                try:
                    body = self.sidecar.diagnosis.explain(job.job_id).body
                except JobNotFound:
                    continue
                job.verdict = body["verdict"]
                if job.verdict == job.expected and job.reached_at is None and self._convincing(job, body):
                    job.reached_at = time.time()
            self._stop.wait(1.0)

    def _convincing(self, job: DemoJob, body: dict[str, object]) -> bool:
        if job.fault is Fault.SLOW_FINALIZE:
            # The point: quiet for longer than the default threshold, yet not stalled while finalizing.
            since = body.get("secondsSinceProgress")
            return isinstance(since, float) and since > self.settings.stall_threshold and not body["stalled"]
        return True

    def done(self) -> bool:
        return all(job.passed for job in self.jobs)

    # -- display -----------------------------------------------------------------------------------
    def table(self) -> Table:
        now = time.time()
        table = Table(
            title=f"aura-monitor demo · {now - self.started:.0f} s · board: http://127.0.0.1:{self.settings.port}/",
            expand=True,
            title_justify="left",
        )
        for column in ("job", "stage", "progress", "ETA", "state", "verdict"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for job in self.jobs:
            state = self.sidecar.tracker.get(job.job_id)
            record = state.record if state else None
            if state is None or record is None:
                table.add_row(job.name, "-", "", "", "waiting", "")
                continue
            eta = None if record.status.terminal else eta_seconds(state.samples, record.percent)
            status = Text(record.status.value)
            if state.stalled:
                status = Text(
                    f"STALLED {state.seconds_since_progress(now) or 0:.0f}s/{state.threshold or 0:g}s", style="bold red"
                )
            verdict = Text(job.verdict or "…", style="green" if job.reached_at else "yellow")
            table.add_row(
                job.name,
                record.stage,
                ProgressBar(total=100, completed=record.percent, width=20),
                f"{record.percent:.0f}",
                f"{eta:.0f}s" if eta else "",
                status,
                verdict,
                Text(job.expected, style="dim"),
            )
        return table

    def verdict_table(self) -> Table:
        table = Table(title="demo verdicts", title_justify="left")
        for column in ("job", "verdict reached", "after", "result"):
            table.add_column(column)
        for job in self.jobs:
            after = f"{job.reached_at - self.started:.0f} s" if job.reached_at else "-"
            result = (
                Text("ok", style="green")
                if job.passed
                else Text(f"MISSED: got {job.verdict or 'nothing'}", style="bold red")
            )
            table.add_row(job.name, job.expected, after, result)
        return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help="exit once every demo job reached its expected verdict; print the verdict table",
    )
    parser.add_argument("--port", type=int, default=9465, help="port of the sidecar and its board (default 9465)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put jobs and videos (default: a temp dir)")


def run(args: argparse.Namespace) -> int:
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="aura-demo-"))
    console = Console()
    demo = Demo(base, args.port)
    console.print(
        f"[bold]aura-monitor demo[/]: {len(demo.jobs)} jobs through the reference pipeline (real ffmpeg), "
        f"two healthy and one per fault, in {base}\n"
        f"Demo thresholds (production: 45 s / 180 s / 600 s): stall {DEMO_THRESHOLDS['stall_threshold']:g} s, "
        f"finalizing {DEMO_THRESHOLDS['finalizing_threshold']:g} s, queued {DEMO_THRESHOLDS['queued_threshold']:g} s;"
        f" fault timings x{FAULT_SCALE:g}.\n"
        f"Board: http://127.0.0.1:{args.port}/   API: http://127.0.0.1:{args.port}/api/jobs   "
        f"explain: aura-monitor explain <job> --jobs-dir {demo.jobs_dir}"
    )
    demo.start()
    deadline = time.monotonic() + ONCE_TIMEOUT_S
    try:
        with Live(demo.table(), console=console, refresh_per_second=2, transient=args.once) as live:
            while not (args.once and (demo.done() or time.monotonic() > deadline)):
                time.sleep(0.5)
                live.update(demo.table())
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()
    console.print(demo.verdict_table())
    missed = [job for job in demo.jobs if not job.passed]
    if args.once and missed:
        names = ", ".join(f"{j.name} (expected {j.expected}, got {j.verdict or 'nothing'})" for j in missed)
        console.print(f"[bold red]demo: missed verdicts:[/] {names}; worker log: {base / 'worker.log'}")
        return 1
    return 0
