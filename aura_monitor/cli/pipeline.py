"""`aura-monitor enqueue | render | worker`: the reference pipeline's sub-commands."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from ..clock import SystemClock
from ..config import default_jobs_dir
from ..exceptions import ConfigError, JobNotFound, RecordError
from ..jobs.model import JobStatus
from ..pipeline.context import RunnerSettings
from ..pipeline.enqueue import enqueue_job
from ..pipeline.errors import JobAlreadyClaimed, JobNotRunnable
from ..pipeline.faults import FAULT_EFFECTS, Fault
from ..pipeline.ffmpeg import FfmpegTools
from ..pipeline.queue import Claim, claim_job, claim_token
from ..pipeline.request import DEFAULT_TOPIC, RenderRequest
from ..pipeline.runner import run_job
from ..pipeline.worker import Worker, WorkerSettings
from ..pipeline.workspace import JobWorkspace
from ..records import read_record
from ..reporter import CancelWatch, tracer_provider_from_env
from .exits import DAEMON_STOP, UsageError, epilog

_RAW = argparse.RawDescriptionHelpFormatter  # keeps the exit-code table's lines


def register(subparsers: Any) -> None:
    """Add the `enqueue`, `render` and `worker` sub-commands."""
    _enqueue_parser(subparsers).set_defaults(run=run_enqueue)
    _render_parser(subparsers).set_defaults(run=run_render)
    _worker_parser(subparsers).set_defaults(run=run_worker)


def _jobs_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs-dir",
        type=Path,
        default=Path(os.environ["AURA_MONITOR_JOBS_DIR"]) if os.environ.get("AURA_MONITOR_JOBS_DIR") else None,
        help="directory of <job id>/job.json (default: $AURA_MONITOR_JOBS_DIR, else Aura's jobs dir)",
    )


def _jobs_dir(args: argparse.Namespace) -> Path:
    jobs_dir: Path = args.jobs_dir or default_jobs_dir()
    return jobs_dir


def _enqueue_parser(subparsers: Any) -> argparse.ArgumentParser:
    faults = "; ".join(f"{fault.value}: {effect}" for fault, effect in FAULT_EFFECTS.items())
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "enqueue",
        help="Queue a render job for the reference pipeline and print its id.",
        description=f"Queue a render job for the reference pipeline and print its id. Faults: {faults}.",
        epilog=epilog(("0    queued; the id is printed", "1    a job with that id already exists")),
        formatter_class=_RAW,
    )
    _jobs_dir_flag(parser)
    parser.add_argument("--duration", type=float, default=4.0, help="video length in seconds (default 4)")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels, even (default 320)")
    parser.add_argument("--height", type=int, default=180, help="frame height in pixels, even (default 180)")
    parser.add_argument("--fps", type=int, default=15, help="frames per second (default 15)")
    parser.add_argument("--priority", type=int, default=5, help="lower runs first (default 5)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="what the video is about")
    parser.add_argument("--fault", choices=[fault.value for fault in Fault], help="failure mode to reproduce")
    parser.add_argument(
        "--fault-scale", type=float, default=1.0, help="multiplies fault timings, e.g. 0.1 for a short demo"
    )
    parser.add_argument("--realtime", action="store_true", help="encode at real-time speed (a long render)")
    parser.add_argument("--tts-provider-url", help="remote TTS endpoint (POST text, answers audio/wav)")
    parser.add_argument("--id", dest="job_id", help="job id to use (default: a new GUID)")
    return parser


def run_enqueue(args: argparse.Namespace) -> int:
    request = RenderRequest(
        duration_s=args.duration,
        width=args.width,
        height=args.height,
        fps=args.fps,
        topic=args.topic,
        fault=Fault(args.fault) if args.fault else None,
        fault_scale=args.fault_scale,
        realtime=args.realtime,
        tts_provider_url=args.tts_provider_url,
    )
    job_id = enqueue_job(_jobs_dir(args), request, clock=SystemClock(), priority=args.priority, job_id=args.job_id)
    print(job_id)
    return 0


def _render_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "render",
        help="Render one queued job in this process (what a worker runs per job).",
        description="Render one queued job in this process. Exit 0 when it completed or was cancelled, 1 when it "
        "failed. Tracing follows OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_ENDPOINT.",
        epilog=epilog(
            (
                "0    the job completed or was cancelled",
                "1    the job failed, does not exist, is not queued, or another worker holds it",
            ),
            "SIGTERM or Ctrl-C cancels the render: ffmpeg is resumed if stopped, asked to quit, killed after "
            "--stop-grace",
        ),
        formatter_class=_RAW,
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    _jobs_dir_flag(parser)
    parser.add_argument("--output-dir", type=Path, help="where finished videos go (default <jobs dir>/../output)")
    parser.add_argument("--claim", help="claim token of the worker that started this process")
    parser.add_argument("--stop-grace", type=float, default=5.0, help="seconds between ffmpeg's q and a kill")
    return parser


def run_render(args: argparse.Namespace) -> int:
    jobs_dir = _jobs_dir(args)
    workspace = JobWorkspace.of(jobs_dir, args.job_id, args.output_dir)
    try:
        current = read_record(str(workspace.record))
    except RecordError as exc:
        if not workspace.record.is_file():
            raise JobNotFound(f"no job {args.job_id} in {jobs_dir}") from None
        raise JobNotRunnable(f"job {args.job_id} has an unreadable record: {exc}") from None
    if current.status is not JobStatus.QUEUED:
        raise JobNotRunnable(f"job {args.job_id} is {current.status.value}; only a queued job can be rendered")
    clock = SystemClock()
    own_claim: Claim | None = None
    if args.claim is not None:
        if claim_token(workspace.claim) != args.claim:
            raise JobAlreadyClaimed(f"job {args.job_id} is not claimed with the given token")
    else:
        own_claim = claim_job(workspace, owner_pid=os.getpid(), clock=clock)
        if own_claim is None:
            raise JobAlreadyClaimed(f"job {args.job_id} is claimed by another worker")
    try:
        return _render_claimed(workspace, clock, RunnerSettings(stop_grace_s=args.stop_grace))
    finally:
        if own_claim is not None:
            own_claim.release()


def _render_claimed(workspace: JobWorkspace, clock: SystemClock, settings: RunnerSettings) -> int:
    cancel = CancelWatch(workspace.job_dir, clock=clock, interval=settings.poll_interval_s)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        _resume_own_group()
        cancel.interrupt(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    provider = tracer_provider_from_env()
    try:
        status = run_job(
            workspace,
            clock=clock,
            tools=FfmpegTools.detect(),
            settings=settings,
            tracer_provider=provider,
            cancel=cancel,
        )
    finally:
        provider.shutdown()
    return 1 if status is JobStatus.FAILED else 0


def _resume_own_group() -> None:
    """SIGCONT to this render's process group when it leads one (a worker starts each render in its own
    session): a SIGSTOPped ffmpeg cannot read the `q` it is about to be sent, nor act on SIGTERM."""
    if os.getpgrp() == os.getpid():
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGCONT)


def _worker_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="Run queued jobs of a jobs dir, each in its own render process.",
        description="Run queued jobs by priority (lower first, then oldest), each in its own render process, "
        "honouring cancel and retry requests; serves Prometheus /metrics with --metrics-port.",
        epilog=epilog(
            ("0    stopped on request, or idle with --exit-when-idle",),
            DAEMON_STOP,
            "2    usage error (a bad flag or value) or the --metrics-port is already in use",
        ),
        formatter_class=_RAW,
    )
    _jobs_dir_flag(parser)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1)")
    parser.add_argument("--output-dir", type=Path, help="where finished videos go (default <jobs dir>/../output)")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port (0 picks one)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for /metrics (default 127.0.0.1)")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="seconds between rounds (default 0.2)")
    parser.add_argument("--stop-grace", type=float, default=5.0, help="seconds between ffmpeg's q and a kill")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit once nothing is queued or running")
    return parser


def run_worker(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.poll_interval <= 0:
        raise ConfigError("--poll-interval must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    FfmpegTools.detect()  # fail now, not once per job, when ffmpeg is missing
    jobs_dir = _jobs_dir(args)
    jobs_dir.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    worker = Worker(
        WorkerSettings(
            jobs_dir=jobs_dir,
            output_dir=args.output_dir,
            concurrency=args.concurrency,
            poll_interval_s=args.poll_interval,
            stop_grace_s=args.stop_grace,
        ),
        clock=SystemClock(),
        registry=registry,
    )
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    server = None
    if args.metrics_port is not None:
        try:
            server, _ = start_http_server(args.metrics_port, addr=args.metrics_host, registry=registry)
        except OSError as exc:  # before any job starts: nothing to stop yet
            raise UsageError(
                f"cannot serve /metrics on {args.metrics_host}:{args.metrics_port}: {exc.strerror or exc}; "
                "pick another --metrics-port"
            ) from None
        print(f"metrics on http://{args.metrics_host}:{server.server_port}/metrics", file=sys.stderr, flush=True)
    try:
        worker.run(stop, exit_when_idle=args.exit_when_idle)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0
