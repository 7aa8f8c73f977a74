"""`aura-monitor jobs`: the sidecar's job list as a table (`-o wide` for more columns, `-o json` for scripts)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console, JustifyMethod
from rich.table import Table

from ..exceptions import JobNotFound
from ..records.timestamps import parse_iso
from .client import ServerUnreachable, add_url_flag
from .exits import UsageError, epilog
from .output import add_output_flag, plain_table, print_json, stdout_is_terminal
from .terminal import markup_safe

HELP = "List the sidecar's jobs, newest first (-o table|wide|json)."
EPILOG = epilog(
    (
        "0    the list was printed (even when no job matches)",
        "1    the sidecar could not be reached or answered with an error",
    )
)

_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "dim",
    "paused": "magenta",
}

Job = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_url_flag(parser)
    parser.add_argument("--status", help="comma-separated statuses, e.g. running,queued")
    parser.add_argument("--stage", help="stage name or canonical stage, e.g. render")
    parser.add_argument("--stalled", action="store_true", help="only stalled jobs")
    parser.add_argument("--limit", type=int, default=100, help="at most this many jobs (default 100)")
    add_output_flag(parser, "exactly the body of GET /api/jobs")


def fetch(url: str, params: dict[str, Any], path: str = "/api/jobs") -> dict[str, Any]:
    """GET a sidecar route; 400 is a usage error, 404 a missing job, anything else not 200 a failure."""
    where = f"{url.rstrip('/')}{path}"
    try:
        answer = httpx.get(where, params=params, timeout=10.0)
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach the sidecar at {url}: {exc}") from None
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        if answer.status_code == 400:
            raise UsageError(f"the sidecar refused the request: {detail}")
        if answer.status_code == 404:
            raise JobNotFound(f"{where}: {detail}")
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


def _seconds(value: object, fmt: str) -> str:
    return "" if not isinstance(value, int | float) else f"{value:{fmt}} s"


Column = tuple[str, "JustifyMethod", Callable[[Job, float], str]]

COLUMNS: tuple[Column, ...] = (
    ("job", "left", lambda job, now: str(job["id"])),
    ("status", "left", lambda job, now: str(job["status"])),
    ("stage", "left", lambda job, now: str(job.get("stage") or "")),
    ("%", "right", lambda job, now: f"{job.get('percent', 0):g}"),
    ("stalled", "left", lambda job, now: str(job.get("verdict") or "yes") if job.get("stalled") else ""),
    ("since progress", "right", lambda job, now: _seconds(job.get("secondsSinceProgress"), ".0f")),
    ("threshold", "right", lambda job, now: _seconds(job.get("thresholdSeconds"), "g")),
    ("attempt", "right", lambda job, now: str(job.get("attempt", 1))),
    ("age", "right", lambda job, now: _age(job.get("createdAt"), now)),
)
WIDE_COLUMNS: tuple[Column, ...] = (
    ("verdict", "left", lambda job, now: str(job.get("verdict") or "")),
    (
        "eta",
        "right",
        lambda job, now: "stalled" if job.get("stalled") else _seconds(job.get("etaSeconds"), ".0f") or "-",
    ),
    ("created", "left", lambda job, now: str(job.get("createdAt") or "")),
    ("completed", "left", lambda job, now: str(job.get("completedAt") or "")),
    ("output", "left", lambda job, now: str(job.get("outputPath") or "")),
    ("error", "left", lambda job, now: str(job.get("errorMessage") or "")),
)


def columns(wide: bool) -> tuple[Column, ...]:
    return COLUMNS + WIDE_COLUMNS if wide else COLUMNS


def table(jobs: list[Job], total: int, now: float, wide: bool = False) -> Table:
    """The rich table shown on a terminal."""
    grid = Table(title=f"{len(jobs)} of {total} jobs", title_justify="left")
    chosen = columns(wide)
    for name, justify, _ in chosen:
        grid.add_column(name, justify=justify, no_wrap=name == "job", overflow="fold")
    for job in jobs:
        # Ids, stages and verdicts come from records: escaped, since every cell is rich markup.
        cells = [markup_safe(value(job, now)) for _, _, value in chosen]
        cells[1] = f"[{_STATUS_STYLES.get(str(job['status']), 'white')}]{cells[1]}[/]"
        if job.get("stalled"):
            cells[4] = f"[bold red]{cells[4]}[/]"
        grid.add_row(*cells)
    return grid


def plain(jobs: list[Job], now: float, wide: bool = False) -> str:
    """The table printed off a terminal: every value whole, one job per line."""
    chosen = columns(wide)
    return plain_table([name for name, _, _ in chosen], [[value(job, now) for _, _, value in chosen] for job in jobs])


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.stage:
        params["stage"] = args.stage
    if args.stalled:
        params["stalled"] = "true"
    body = fetch(args.url, params)
    if args.output == "json":
        print_json(body)
        return 0
    now, wide = time.time(), args.output == "wide"
    if stdout_is_terminal():
        Console().print(table(body["jobs"], body.get("total", body["count"]), now, wide))
    else:
        print(plain(body["jobs"], now, wide), flush=True)
    return 0
