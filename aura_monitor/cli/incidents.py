"""`aura-monitor incidents`: the sidecar's incident history (stalls and how they ended), newest first."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from .client import add_url_flag
from .exits import UsageError, epilog
from .jobs import fetch
from .output import add_output_flag, plain_table, print_json, stdout_is_terminal
from .terminal import markup_safe

HELP = "List the stalls the sidecar recorded and how each ended (-o table|wide|json)."
EPILOG = epilog(
    (
        "0    the list was printed (even when no incident matches)",
        "1    the sidecar could not be reached, or its history database is unavailable (see /readyz)",
    )
)

Incident = dict[str, Any]

_RESOLUTION_STYLES = {"open": "bold red", "recovered": "green", "completed": "green", "failed": "red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_url_flag(parser)
    parser.add_argument("--since", default="24h", help="ISO-8601 time or how long ago: 90m, 24h, 7d (default 24h)")
    parser.add_argument("--until", help="ISO-8601 time or how long ago")
    parser.add_argument("--verdict", help="comma-separated final verdicts, e.g. encoder_hung,disk_full")
    parser.add_argument("--stage", help="stage name or canonical stage, e.g. render")
    parser.add_argument("--node", help="only incidents of this render node")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--open", action="store_true", help="only incidents still open")
    state.add_argument("--closed", action="store_true", help="only incidents that ended")
    parser.add_argument("--limit", type=int, default=100, help="at most this many incidents (default 100)")
    add_output_flag(parser, "exactly the body of GET /api/incidents")


def _duration(incident: Incident) -> str:
    seconds = incident.get("durationSeconds")
    if not isinstance(seconds, int | float):
        return "open"
    whole = int(seconds)
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m" if whole >= 3600 else f"{whole // 60}m{whole % 60:02d}s"


def _timeline(incident: Incident) -> str:
    return " > ".join(str(item["code"]) for item in incident.get("timeline", []))


COLUMNS = (
    ("started", lambda i: str(i["startedAt"])),
    ("job", lambda i: str(i["jobId"])),
    ("stage", lambda i: str(i["stage"])),
    ("verdict", lambda i: str(i["verdict"])),
    ("resolution", lambda i: str(i["resolution"])),
    ("lasted", _duration),
)
WIDE = (
    ("node", lambda i: str(i["node"])),
    ("attempt", lambda i: str(i["attempt"])),
    ("timeline", _timeline),
    ("id", lambda i: str(i["id"])),
)


def run(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    params: dict[str, Any] = {"limit": args.limit, "since": args.since}
    for name in ("until", "verdict", "stage", "node"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    if args.open or args.closed:
        params["open"] = "true" if args.open else "false"
    body = fetch(args.url, params, "/api/incidents")
    if args.output == "json":
        print_json(body)
        return 0
    chosen = COLUMNS + WIDE if args.output == "wide" else COLUMNS
    incidents: list[Incident] = body["incidents"]
    if not stdout_is_terminal():
        print(plain_table([name for name, _ in chosen], [[value(i) for _, value in chosen] for i in incidents]))
        return 0
    grid = Table(title=f"{len(incidents)} of {body['count']} incidents since {args.since}", title_justify="left")
    for name, _ in chosen:
        grid.add_column(name, overflow="fold")
    for incident in incidents:
        cells = [markup_safe(value(incident)) for _, value in chosen]  # record text: never rich markup
        style = _RESOLUTION_STYLES.get(str(incident["resolution"]), "yellow")
        cells[4] = f"[{style}]{cells[4]}[/]"
        grid.add_row(*cells)
    Console().print(grid)
    return 0
