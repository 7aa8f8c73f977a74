"""`aura-monitor watch JOB_ID`: follow one job's event stream with a progress bar until it ends.

Exit codes: 0 completed, 1 failed, 3 cancelled, 2 usage or connection error (after the reconnections).
"""

from __future__ import annotations

import argparse
import json
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
from .terminal import inert_data, markup_safe

EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 3}
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
            kind = "diagnosed" if data.get("refined") else "stalled"
            self.notes.append(f"{kind}: {self.verdict} - {data.get('reason', '')}")
        elif name == "job-recovered":
            self.stalled, self.verdict = False, None
            self.notes.append(f"recovered: {data.get('reason', '')}")
        elif name == "warning":
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
    def badge(self) -> str:
        return f"[bold red]STALLED[/] {markup_safe(self.verdict or '')}" if self.stalled else ""


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


def run(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)
    console = Console(stderr=False)
    view = JobView(job_id)
    reconnect = Reconnect(attempts=max(0, args.reconnects))
    if console.is_terminal:
        _follow_live(args.url, view, reconnect, console)
    else:
        _follow_plain(args.url, view, reconnect, console)
    outcome = view.outcome or view.status
    style = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(outcome, "white")
    console.print(f"[bold {style}]{job_id} {markup_safe(outcome)}[/]")
    if view.detail:
        console.print(view.detail, markup=False, highlight=False)
    return EXIT_CODES.get(outcome, 2)


def _follow_live(url: str, view: JobView, reconnect: Reconnect, console: Console) -> None:
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
                bar.console.print(f"[dim]{markup_safe(view.notes.pop(0))}[/]", highlight=False)
            _show(bar, task, view)
            return view.outcome is not None

        follow(url, view.job_id, on_event, reconnect=reconnect)


def _show(bar: Progress, task: TaskID, view: JobView) -> None:
    bar.update(
        task,
        completed=view.percent,
        stage=markup_safe(view.stage or view.status),
        eta=_duration(view.eta_seconds),
        elapsed=view.elapsed(time.time()),
        badge=view.badge,
    )


def _follow_plain(url: str, view: JobView, reconnect: Reconnect, console: Console) -> None:
    def on_event(name: str, data: dict[str, Any]) -> bool:
        view.apply(name, data)
        if name == "connected":
            resync = " (resync)" if data.get("resync") else ""
            state = markup_safe(f"{view.status} {view.stage}")
            console.print(f"{view.job_id}: {state} {view.percent:g}%{resync}", highlight=False)
        while view.notes:
            console.print(f"{view.job_id}: {markup_safe(view.notes.pop(0))} at {view.percent:g}%", highlight=False)
        return view.outcome is not None

    follow(url, view.job_id, on_event, reconnect=reconnect)
