"""`aura-monitor jobs`: the sidecar's job list as a table."""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx
from rich.console import Console, JustifyMethod
from rich.table import Table

from ..records.timestamps import parse_iso
from .client import ServerUnreachable, add_url_flag
from .terminal import markup_safe

_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "dim",
    "paused": "magenta",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_url_flag(parser)
    parser.add_argument("--status", help="comma-separated statuses, e.g. running,queued")
    parser.add_argument("--stage", help="stage name or canonical stage, e.g. render")
    parser.add_argument("--stalled", action="store_true", help="only stalled jobs")
    parser.add_argument("--limit", type=int, default=100, help="at most this many jobs (default 100)")


def fetch(url: str, params: dict[str, Any]) -> dict[str, Any]:
    """GET /api/jobs; a problem answer or an unreachable server becomes one clear error."""
    try:
        answer = httpx.get(f"{url.rstrip('/')}/api/jobs", params=params, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach the sidecar at {url}: {exc}") from None
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        raise ServerUnreachable(f"{url} answered {answer.status_code}: {detail}")
    body: dict[str, Any] = answer.json()
    return body


def _age(iso: str | None, now: float) -> str:
    if not iso:
        return ""
    seconds = max(0, int(now - parse_iso(iso)))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def table(jobs: list[dict[str, Any]], total: int, now: float) -> Table:
    grid = Table(title=f"{len(jobs)} of {total} jobs", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("job", "left"),
        ("status", "left"),
        ("stage", "left"),
        ("%", "right"),
        ("stalled", "left"),
        ("since progress", "right"),
        ("threshold", "right"),
        ("attempt", "right"),
        ("age", "right"),
    )
    for column, justify in columns:
        grid.add_column(column, justify=justify, no_wrap=column == "job")
    for job in jobs:
        status = str(job["status"])
        since = job.get("secondsSinceProgress")
        threshold = job.get("thresholdSeconds")
        # Ids, stages and verdicts come from records: escaped, since every cell is rich markup.
        grid.add_row(
            markup_safe(job["id"]),
            f"[{_STATUS_STYLES.get(status, 'white')}]{markup_safe(status)}[/]",
            markup_safe(job.get("stage") or ""),
            f"{job.get('percent', 0):g}",
            f"[bold red]{markup_safe(job.get('verdict') or 'yes')}[/]" if job.get("stalled") else "",
            "" if since is None else f"{since:.0f} s",
            "" if threshold is None else f"{threshold:g} s",
            str(job.get("attempt", 1)),
            _age(job.get("createdAt"), now),
        )
    return grid


def run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.stage:
        params["stage"] = args.stage
    if args.stalled:
        params["stalled"] = "true"
    body = fetch(args.url, params)
    Console().print(table(body["jobs"], body.get("total", body["count"]), time.time()))
    return 0
