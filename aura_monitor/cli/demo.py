"""`aura-monitor demo`: the sidecar, the reference worker and a set of jobs (two healthy, one per fault),
with thresholds scaled down so every failure shows within a minute; `--once` judges every verdict over the
job's life (demo_judge.py)."""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

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
from ..jobs.model import JobStatus
from ..jobs.stall import ThresholdKind
from ..jobs.verdicts import Verdict
from ..pipeline.enqueue import enqueue_job
from ..pipeline.faults import Fault
from ..pipeline.request import RenderRequest
from ..sidecar import Sidecar
from .children import become_subreaper, stop_children
from .demo_judge import HOLD_S, HOLD_SHARE, QUIET, REACH_WITHIN_S, Expectation, JobJudgement, Sample

# Production thresholds are 45 s / 180 s / 10 min; the demo divides them so it fits in a few minutes.
DEMO_THRESHOLDS = {"stall_threshold": 8.0, "finalizing_threshold": 30.0, "queued_threshold": 60.0}
FAULT_SCALE = 0.4  # slow-finalize then lasts 20 s: past the 8 s default, inside the 30 s finalizing threshold
ONCE_TIMEOUT_S = 170.0
SAMPLE_INTERVAL_S = 0.5  # how often each job's served verdict is sampled
PROGRESS_EVERY_S = 5.0  # off a terminal, a summary line at least this often

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


def _expectation(fault: Fault | None) -> Expectation:
    if fault is None:
        return Expectation.COMPLETES
    if fault is Fault.SLOW_FINALIZE:
        return Expectation.QUIET_NOT_STALLED  # the negative case: quiet, finalizing, so never flagged
    if fault is Fault.CAP_PROGRESS:
        return Expectation.QUIET  # frozen at 95 %: the finalizing threshold applies, it may not stall in time
    return Expectation.STALLS


# Two healthy jobs, then one per fault, by name.
FAULTS: dict[str, Fault | None] = {"healthy-1": None, "healthy-2": None, **{fault.value: fault for fault in Fault}}


def demo_jobs() -> list[JobJudgement]:
    return [JobJudgement(name, EXPECTED[fault], _expectation(fault)) for name, fault in FAULTS.items()]


class Demo:
    """Runs everything in one process tree and judges every demo job over its whole life."""

    def __init__(self, base: Path, port: int, hold_s: float = HOLD_S) -> None:
        self.base = base
        self.jobs_dir = base / "jobs"
        self.output_dir = base / "videos"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        # The demo's scaled-down thresholds are the point: never let a history of past demos re-learn them.
        self.settings = load_settings(
            jobs_dir=self.jobs_dir, port=port, rediagnose_interval=2.0, thresholds="configured", **DEMO_THRESHOLDS
        )
        self.sidecar = Sidecar(self.settings)
        self.jobs = demo_jobs()
        self.hold_s = hold_s
        self.started = time.time()
        self.news: queue.SimpleQueue[str] = queue.SimpleQueue()  # what changed, for the plain progress lines
        self._server: uvicorn.Server | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        become_subreaper()  # orphaned renders and encoders come back to us, so stop() finds every one
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
                duration_s=4.0, fault=FAULTS[job.name], fault_scale=FAULT_SCALE, topic=f"aura-monitor demo: {job.name}"
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
        threading.Thread(target=self._judge_quiet, name="demo-judge-quiet", daemon=True).start()

    def stop(self) -> None:
        """Stop the judges, every process the demo started (stopped ones first woken) and the server."""
        self._stop.set()
        stop_children(self._worker)
        if self._server is not None:
            self._server.should_exit = True

    # -- judging -----------------------------------------------------------------------------------
    def _sample(self, job: JobJudgement, verdict: Verdict | None = None) -> Sample | None:
        """What the sidecar serves about `job` now; `verdict` replaces the served one (an explain's)."""
        state = self.sidecar.tracker.get(job.job_id)
        record = state.record if state else None
        if state is None or record is None:
            return None
        now = time.time()
        served = state.verdict if state.stalled else None
        if record.status is JobStatus.COMPLETED:
            served = Verdict.COMPLETED
        quiet = state.seconds_since_progress(now)
        finalizing = state.threshold_kind is ThresholdKind.FINALIZING
        return Sample(
            at=now,
            verdict=verdict if verdict is not None else served,
            stalled=state.stalled,
            stalled_since=state.stalled_since,
            terminal=record.status.terminal,
            status=record.status.value,
            quiet_finalizing=finalizing and quiet is not None and quiet > self.settings.stall_threshold,
        )

    def _take(self, job: JobJudgement, sample: Sample) -> None:
        for change in job.observe(sample):
            self.news.put(f"{job.name}: {change}")

    def _judge(self) -> None:
        """Every job's served verdict (what /api/jobs, the board and the alerts show), twice a second."""
        while not self._stop.is_set():
            for job in self.jobs:
                if job.expectation in QUIET:
                    continue  # judged by _judge_quiet
                sample = self._sample(job)
                if sample is not None:
                    self._take(job, sample)
            self._stop.wait(SAMPLE_INTERVAL_S)

    def _judge_quiet(self) -> None:
        """A job quiet under the finalizing threshold is not stalled, so no verdict is served for it: once it
        is quiet past the default threshold, ask explain, as a user opening its panel would."""
        while not self._stop.is_set():
            for job in self.jobs:
                first = self._sample(job) if job.expectation in QUIET else None
                if first is None:
                    continue
                if job.onset_at is not None or first.quiet_finalizing or first.stalled or first.terminal:
                    try:
                        first = self._sample(job, Verdict(self.sidecar.diagnosis.explain(job.job_id).body["verdict"]))
                    except (JobNotFound, ValueError):
                        continue
                if first is not None:
                    self._take(job, first)
            self._stop.wait(SAMPLE_INTERVAL_S)

    def done(self) -> bool:
        now = time.time()
        return all(job.decided(now, self.hold_s) for job in self.jobs)

    def elapsed(self) -> float:
        return time.time() - self.started

    # -- display -----------------------------------------------------------------------------------
    def table(self) -> Table:
        now = time.time()
        table = Table(
            title=f"aura-monitor demo · {now - self.started:.0f} s · board: http://127.0.0.1:{self.settings.port}/",
            expand=True,
            title_justify="left",
        )
        for column in ("job", "stage", "progress", "%", "ETA", "state", "verdict", "held", "expected"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for job in self.jobs:
            state = self.sidecar.tracker.get(job.job_id)
            record = state.record if state else None
            if state is None or record is None:
                table.add_row(job.name, "-", "", "", "", "waiting", "", "", Text(job.expected, style="dim"))
                continue
            eta = None if record.status.terminal or state.stalled else eta_seconds(state.samples, record.percent)
            status = Text(record.status.value)
            if state.stalled:
                status = Text(
                    f"STALLED {state.seconds_since_progress(now) or 0:.0f}s/{state.threshold or 0:g}s", style="bold red"
                )
            shown = job.verdict or ("…" if job.reached_at is None else "-")
            verdict = Text(shown, style="green" if job.verdict == job.expected else "yellow")
            table.add_row(
                job.name,
                record.stage,
                ProgressBar(total=100, completed=record.percent, width=20),
                f"{record.percent:.0f}",
                f"{eta:.0f}s" if eta else "",
                status,
                verdict,
                _share(job),
                Text(job.expected, style="dim"),
            )
        return table

    def verdict_table(self, finished: bool = True) -> Table:
        now = time.time()
        table = Table(title="demo verdicts", title_justify="left")
        for column in ("job", "expected verdict", "fault at", "reached after", "held", "result"):
            table.add_column(column, no_wrap=column != "result", overflow="fold")
        for job in self.jobs:
            onset = f"{job.onset_at - self.started:.0f} s" if job.onset_at is not None else "-"
            latency = job.latency
            if latency is not None:
                after = f"{latency:.0f} s"
            elif job.reached_at is not None:
                after = f"{job.reached_at - self.started:.0f} s (run)"
            else:
                after = "-"
            result = job.result(now, finished)
            style = "green" if result == "ok" else "bold red" if result.startswith("MISSED") else "yellow"
            table.add_row(job.name, job.expected, onset, after, _share(job), Text(result, style=style))
        return table

    def progress_line(self) -> str:
        """One plain line: how many jobs passed, failed or are being judged, and what each stalled one shows."""
        now = time.time()
        passed = sum(1 for job in self.jobs if job.decided(now, self.hold_s) and job.passed(now))
        failed = sum(1 for job in self.jobs if job.failure(now) is not None)
        stalled = [
            f"{job.name}={job.verdict or '-'}"
            for job in self.jobs
            if (state := self.sidecar.tracker.get(job.job_id)) is not None and state.stalled
        ]
        return (
            f"demo {self.elapsed():4.0f} s: {passed} passed, {failed} failing, {len(self.jobs) - passed - failed} "
            f"being judged; stalled: {', '.join(stalled) or 'none'}"
        )


def _share(job: JobJudgement) -> str:
    share = job.share
    return f"{share:.0%} of {job.after}" if share is not None else "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once",
        action="store_true",
        help=(
            "judge every job until its verdict is decided (reached within 20 s of stalling, then held in 95%% "
            "of the samples for --hold seconds or until the job ended), print the verdict table, exit 1 on a miss"
        ),
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=HOLD_S,
        help=f"with --once: seconds to watch each reached verdict before deciding (default {HOLD_S:g})",
    )
    parser.add_argument("--port", type=int, default=9465, help="port of the sidecar and its board (default 9465)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put jobs and videos (default: a temp dir)")


class _Terminated(Exception):
    """SIGTERM (timeout, docker stop, systemd) arrived: stop as Ctrl-C does."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _watch(demo: Demo, console: Console, once: bool, deadline: float) -> None:
    """Until --once is decided (or forever): a live table on a terminal, plain progress lines otherwise."""

    def finished() -> bool:
        return once and (demo.done() or time.monotonic() > deadline)

    if console.is_terminal:
        with Live(demo.table(), console=console, refresh_per_second=2, transient=once) as live:
            while not finished():
                time.sleep(0.5)
                live.update(demo.table())
        return
    # Off a terminal (a CI log, `| tee`, docker logs) a live table is noise: one line per change, and a
    # summary at least every PROGRESS_EVERY_S so a reader knows it is alive.
    last = 0.0
    while not finished():
        time.sleep(0.5)
        while not demo.news.empty():
            print(f"demo {demo.elapsed():4.0f} s: {demo.news.get()}", flush=True)
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            print(demo.progress_line(), flush=True)


def run(args: argparse.Namespace) -> int:
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="aura-demo-"))
    # Off a terminal rich would cut every column to 80: give the tables room (COLUMNS still wins).
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
    demo = Demo(base, args.port, hold_s=args.hold)
    console.print(
        f"[bold]aura-monitor demo[/]: {len(demo.jobs)} jobs through the reference pipeline (real ffmpeg), "
        f"two healthy and one per fault, in {base}\n"
        f"Demo thresholds (production: 45 s / 180 s / 600 s): stall {DEMO_THRESHOLDS['stall_threshold']:g} s, "
        f"finalizing {DEMO_THRESHOLDS['finalizing_threshold']:g} s, queued {DEMO_THRESHOLDS['queued_threshold']:g} s;"
        f" fault timings x{FAULT_SCALE:g}. A faulty job passes when its verdict comes within "
        f"{REACH_WITHIN_S:g} s of stalling and holds in {HOLD_SHARE:.0%} of the samples after that.\n"
        f"Board: http://127.0.0.1:{args.port}/   API: http://127.0.0.1:{args.port}/api/jobs   "
        f"explain: aura-monitor explain <job> --jobs-dir {demo.jobs_dir}"
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    stopped_by: signal.Signals | None = None
    try:
        demo.start()
        _watch(demo, console, args.once, time.monotonic() + ONCE_TIMEOUT_S)
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
    except _Terminated:
        stopped_by = signal.SIGTERM
    finally:
        # A second signal must not cut the cleanup short and leave a stopped ffmpeg behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with _ignoring_sigint():
            demo.stop()
        signal.signal(signal.SIGTERM, previous)
    if stopped_by is not None:
        console.print(f"demo stopped by {stopped_by.name}: the worker, its renders and their encoders are stopped")
    console.print(demo.verdict_table(finished=stopped_by is None))
    if stopped_by is not None:
        return 128 + stopped_by  # as a shell reports a stop by that signal (130 Ctrl-C, 143 SIGTERM)
    now = time.time()
    missed = [job for job in demo.jobs if not job.passed(now)]
    if args.once and missed:
        names = ", ".join(f"{j.name} ({j.result(now, True)})" for j in missed)
        console.print(f"[bold red]demo: missed verdicts:[/] {names}; worker log: {base / 'worker.log'}")
        return 1
    return 0


@contextmanager
def _ignoring_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
