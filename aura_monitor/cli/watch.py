"""`aura-monitor watch JOB_ID`: follow one job's event stream with a progress bar until it ends.

On a terminal: a live bar, with a line per change. Off a terminal: one plain line per change and a progress
line at least every `--progress-every` seconds, each saying STALLED while the job is stalled. `-o json`:
one JSON object per event (NDJSON), then an `exit` object. Exit codes: see EPILOG.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, connect_sse
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from ..exceptions import JobNotFound
from ..jobs.model import validate_job_id
from ..records.timestamps import parse_iso
from .client import ServerUnreachable, add_url_flag
from .exits import FAILED, OK, UsageError, epilog
from .output import FORMATS, print_json, stdout_is_terminal
from .terminal import inert_data, markup_safe

HELP = "Follow one job live until it ends; exit 0 completed, 1 failed, 3 cancelled (-o table|wide|json)."
CANCELLED = 3  # beyond DESIGN 2.1's 0/1/2: lets a script tell a cancelled job (not an error) from a failed one
EXIT_CODES = {"completed": OK, "failed": FAILED, "cancelled": CANCELLED}
EPILOG = epilog(
    (
        "0    the job completed",
        "1    the job failed, there is no such job, or the sidecar was lost after every reconnection",
        "3    the job was cancelled",
    )
)
PROGRESS_EVERY_S = 10.0
TERMINAL_EVENTS = {"job-completed": "completed", "job-failed": "failed", "job-cancelled": "cancelled"}


@dataclass
class JobView:
    """What the watcher knows of the job, from `connected` snapshots and the events after them."""

    job_id: str
    status: str = "unknown"
    stage: str = ""
    percent: float = 0.0
    eta_seconds: float | None = None
    started_at: float | None = None
    stalled: bool = False
    verdict: str | None = None
    outcome: str | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def apply(self, name: str, data: dict[str, Any]) -> None:
        """Take one event; sets `outcome` on the job's terminal event."""
        data = inert_data(data)  # record text only ever reaches the terminal inert
        if name == "connected":
            self._snapshot(data.get("job") or {})
            return
        for key in ("status", "stage"):
            if isinstance(data.get(key), str):
                setattr(self, key, data[key])
        if isinstance(data.get("percent"), int | float):
            self.percent = float(data["percent"])
        if name == "step-progress":
            self.eta_seconds = data.get("etaSeconds")
        elif name == "step-status":
            self.notes.append(f"stage {data.get('previousStep') or '?'} -> {data.get('step')}")
        elif name == "job-status":
            self._snapshot(data.get("job") or {})
            self.notes.append(f"status {data.get('previousStatus') or 'new'} -> {data.get('status')}")
        elif name == "job-stalled":
            self.stalled, self.verdict = True, data.get("verdict")
            kind = "STALLED, diagnosed" if data.get("refined") else "STALLED"
            self.notes.append(f"{kind}: {self.verdict} - {data.get('reason', '')}")
        elif name == "job-recovered":
            self.stalled, self.verdict = False, None
            self.notes.append(f"recovered: {data.get('reason', '')}")
        elif name == "warning" and data.get("code") != "job_stalled":  # Aura's spelling of the job-stalled above
            self.notes.append(f"warning {data.get('code')}: {data.get('message', '')}")
        elif name in TERMINAL_EVENTS:
            self.outcome = TERMINAL_EVENTS[name]
            self.detail = _ending(name, data)

    def _snapshot(self, job: dict[str, Any]) -> None:
        if not job:
            return
        self.status = str(job.get("status") or self.status)
        self.stage = str(job.get("stage") or "")
        self.percent = float(job.get("percent") or 0.0)
        self.eta_seconds = job.get("etaSeconds")
        self.stalled = bool(job.get("stalled"))
        self.verdict = job.get("verdict")
        started = job.get("startedAt") or job.get("createdAt")
        self.started_at = parse_iso(started) if isinstance(started, str) else None

    def elapsed(self, now: float) -> str:
        return _duration(None if self.started_at is None else now - self.started_at)

    @property
    def eta(self) -> str:
        """The ETA as shown: none while stalled (the last velocity no longer says anything)."""
        return "stalled" if self.stalled else _duration(self.eta_seconds)

    @property
    def badge(self) -> str:
        return f"[bold red]STALLED[/] {markup_safe(self.verdict or '')}" if self.stalled else ""

    def line(self, now: float) -> str:
        """One plain progress line (already inert): state, percent, ETA, elapsed, and STALLED while stalled."""
        stalled = f" STALLED {self.verdict or ''}".rstrip() if self.stalled else ""
        state = f"{self.status} {self.stage}".rstrip()
        return f"{self.job_id}: {state} {self.percent:g}% ETA {self.eta} elapsed {self.elapsed(now)}{stalled}"


def _ending(name: str, data: dict[str, Any]) -> str:
    if name == "job-completed":
        return f"output: {data.get('outputPath') or '(none recorded)'}"
    if name == "job-failed":
        errors = data.get("errors") or [{}]
        first = errors[0]
        lines = [f"{first.get('code', '?')}: {first.get('message', data.get('errorMessage', ''))}"]
        lines += [f"  - {step}" for step in first.get("remediation") or []]
        return "\n".join(lines)
    return str(data.get("message") or "cancelled")


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Reconnect:
    """Bounded exponential backoff between reconnections; reset by every event received."""

    attempts: int = 10
    first_delay: float = 0.5
    max_delay: float = 10.0
    failures: int = 0

    def next_delay(self, advised_ms: int | None) -> float | None:
        """Seconds to wait before the next try, or None when the attempts are used up."""
        self.failures += 1
        if self.failures > self.attempts:
            return None
        base = advised_ms / 1000 if advised_ms else self.first_delay
        return min(self.max_delay, base * 2.0 ** (self.failures - 1))


def follow(
    url: str,
    job_id: str,
    on_event: Callable[[str, dict[str, Any]], bool],
    *,
    reconnect: Reconnect,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
) -> None:
    """Read the job's stream, resuming with Last-Event-ID, until `on_event` returns True (the job ended)."""
    last_id: str | None = None
    advised: int | None = None
    problem = "no connection yet"
    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(10.0, read=60.0))
    try:
        while True:
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id else {})
            try:
                with connect_sse(
                    client, "GET", f"{url.rstrip('/')}/api/jobs/{job_id}/events", headers=headers
                ) as source:
                    status = source.response.status_code
                    if status == 404:
                        raise JobNotFound(f"the sidecar at {url} has no job {job_id!r}")
                    if status == 204:
                        return  # the server says we already had the terminal event
                    if status != 200:
                        source.response.read()
                        raise ServerUnreachable(f"{url} answered {status}: {source.response.text[:200]}")
                    for event in source.iter_sse():
                        reconnect.failures = 0
                        last_id, advised = event.id or last_id, event.retry or advised
                        if on_event(event.event, _data(event)):
                            return
                    problem = "the server ended the stream before the job ended"
            except (httpx.TransportError, SSEError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            delay = reconnect.next_delay(advised)
            if delay is None:
                raise ServerUnreachable(f"lost {url} after {reconnect.attempts} reconnections ({problem})")
            sleep(delay)
    finally:
        if own:
            client.close()


def _data(event: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data) if event.data else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="the job's id")
    add_url_flag(parser)
    parser.add_argument("--reconnects", type=int, default=10, help="reconnections before giving up (default 10)")
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="table: a live bar on a terminal, plain lines off one (default); wide: each line also carries the "
        "time; json: one JSON object per SSE event, {event, data} with data exactly as the API sent it, then "
        "{event: exit, data: {jobId, outcome, exitCode}}",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=PROGRESS_EVERY_S,
        metavar="SECONDS",
        help=f"off a terminal, print a progress line at least this often (default {PROGRESS_EVERY_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)
    if args.progress_every <= 0:
        raise UsageError(f"--progress-every must be positive, got {args.progress_every:g}")
    view = JobView(job_id)
    reconnect = Reconnect(attempts=max(0, args.reconnects))
    if args.output == "json":
        return _follow_json(args.url, view, reconnect)
    console = Console(stderr=False, soft_wrap=True)  # soft_wrap: piped lines are never cut or folded at 80
    if stdout_is_terminal():
        _follow_live(args.url, view, reconnect, console, timestamps=args.output == "wide")
    else:
        _follow_plain(args.url, view, reconnect, console, args.progress_every, timestamps=args.output == "wide")
    outcome = view.outcome or view.status
    style = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(outcome, "white")
    console.print(f"[bold {style}]{job_id} {markup_safe(outcome)}[/]")
    if view.detail:
        console.print(view.detail, markup=False, highlight=False)
    return EXIT_CODES.get(outcome, FAILED)


def _follow_json(url: str, view: JobView, reconnect: Reconnect) -> int:
    def on_event(name: str, data: dict[str, Any]) -> bool:
        print_json({"event": name, "data": data}, indent=None)
        view.apply(name, data)
        return view.outcome is not None

    follow(url, view.job_id, on_event, reconnect=reconnect)
    outcome = view.outcome or view.status
    code = EXIT_CODES.get(outcome, FAILED)
    print_json({"event": "exit", "data": {"jobId": view.job_id, "outcome": outcome, "exitCode": code}}, indent=None)
    return code


def _stamp(timestamps: bool) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S ", time.localtime()) if timestamps else ""


def _follow_live(url: str, view: JobView, reconnect: Reconnect, console: Console, *, timestamps: bool) -> None:
    with Progress(
        TextColumn("{task.fields[stage]:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("elapsed {task.fields[elapsed]}"),
        TextColumn("{task.fields[badge]}"),
        console=console,
    ) as bar:
        task = bar.add_task(view.job_id, total=100, stage="", eta="-:--", elapsed="-:--", badge="")

        def on_event(name: str, data: dict[str, Any]) -> bool:
            view.apply(name, data)
            while view.notes:
                note = markup_safe(view.notes.pop(0))
                bar.console.print(f"[dim]{_stamp(timestamps)}{note}[/]", highlight=False)
            _show(bar, task, view)
            return view.outcome is not None

        follow(url, view.job_id, on_event, reconnect=reconnect)


def _show(bar: Progress, task: TaskID, view: JobView) -> None:
    bar.update(
        task,
        completed=view.percent,
        stage=markup_safe(view.stage or view.status),
        eta=view.eta,
        elapsed=view.elapsed(time.time()),
        badge=view.badge,
    )


def _follow_plain(
    url: str, view: JobView, reconnect: Reconnect, console: Console, every: float, *, timestamps: bool
) -> None:
    """Plain lines: one per change, and a progress line whenever `every` seconds passed without one."""
    lock = threading.Lock()
    last = [time.monotonic()]
    done = threading.Event()

    def say(text: str) -> None:
        with lock:
            console.print(f"{_stamp(timestamps)}{text}", markup=False, highlight=False)
            sys.stdout.flush()
            last[0] = time.monotonic()

    def ticker() -> None:
        # A pipe reader (a CI log, `| tee`) must see the job is alive or STALLED even when no event comes.
        while not done.wait(max(0.05, every - (time.monotonic() - last[0]))):
            if time.monotonic() - last[0] >= every and view.status != "unknown":
                say(view.line(time.time()))

    def on_event(name: str, data: dict[str, Any]) -> bool:
        view.apply(name, data)
        if name == "connected":
            resync = " (resync)" if data.get("resync") else ""
            stalled = f" STALLED {view.verdict or ''}".rstrip() if view.stalled else ""
            say(f"{view.job_id}: {view.status} {view.stage} {view.percent:g}%{stalled}{resync}")
        while view.notes:
            say(f"{view.job_id}: {view.notes.pop(0)} at {view.percent:g}%")
        return view.outcome is not None

    thread = threading.Thread(target=ticker, name="watch-progress", daemon=True)
    thread.start()
    try:
        follow(url, view.job_id, on_event, reconnect=reconnect)
    finally:
        done.set()
        thread.join(timeout=1.0)
