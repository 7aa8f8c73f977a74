"""`aura-monitor fleet`: every node and every stalled job of the fleet, read from Prometheus."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ..telemetry.fleet import Fleet, FleetJob, FleetNode, read_fleet
from ..telemetry.promql import PrometheusClient
from .exits import UsageError, epilog
from .output import add_output_flag, plain_table, print_json, stdout_is_terminal
from .terminal import markup_safe

HELP = "Every node (up or down) and every stalled job of the fleet, from Prometheus (-o table|wide|json)."
EPILOG = epilog(
    (
        "0    the fleet was printed (even with nodes down or jobs stalled: read the table)",
        "1    Prometheus could not be reached or refused the queries",
    )
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("AURA_MONITOR_PROMETHEUS_URL"),
        metavar="URL",
        help="Prometheus (or Thanos Query) scraping every sidecar, e.g. http://prometheus:9090 "
        "[AURA_MONITOR_PROMETHEUS_URL]",
    )
    add_output_flag(parser, "exactly the body of a sidecar's GET /api/fleet")


async def _read(url: str) -> Fleet:
    async with httpx.AsyncClient() as client:
        return await read_fleet(PrometheusClient(url, client))


def _stuck(job: FleetJob) -> str:
    if job.seconds_since_progress is None:
        return ""
    seconds = int(job.seconds_since_progress)
    hours, minutes = divmod(seconds // 60, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds % 60:02d}s"
    return text if job.threshold_seconds is None else f"{text} / {int(job.threshold_seconds)}s"


def _node_rows(nodes: list[FleetNode], wide: bool) -> tuple[list[str], list[list[Any]]]:
    headers = ["node", "state", "running", "queued", "failed", "version"]
    if wide:
        headers += ["instance", "external url", "last scrape"]
    rows = []
    for node in nodes:
        state = "up" if node.up else ("down, last known" if node.jobs_known == "last-known" else "down, jobs unknown")
        row: list[Any] = [
            node.node,
            state,
            *(node.jobs.get(s, "") if node.jobs_known != "none" else "?" for s in ("running", "queued", "failed")),
            node.version,
        ]
        if wide:
            row += [node.instance, node.external_url, node.last_scrape_at]
        rows.append(row)
    return headers, rows


def _job_rows(jobs: list[FleetJob], wide: bool) -> tuple[list[str], list[list[Any]]]:
    headers = ["node", "job", "status", "stage", "verdict", "stuck/threshold", "explain"]
    if wide:
        headers += ["as of", "board"]
    rows = []
    for job in jobs:
        row: list[Any] = [
            job.node,
            job.job_id,
            job.status,
            job.stage,
            job.verdict or ("diagnosing" if job.status == "stalled" else ""),
            _stuck(job),
            job.explain_url,
        ]
        if wide:
            row += [job.as_of, job.board_url]
        rows.append(row)
    return headers, rows


def _summary(fleet: Fleet) -> str:
    t = fleet.totals
    text = f"{t.nodes} nodes ({t.up} up, {t.down} down), {t.stalled} stalled jobs"
    if t.unknown:
        text += f", {t.unknown} more of down nodes (last known, unknown now)"
    return text


def _rich(headers: list[str], rows: list[list[Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in headers:
        table.add_column(header.upper())
    for row in rows:
        table.add_row(*(markup_safe("" if value is None else str(value)) for value in row))
    return table


def run(args: argparse.Namespace) -> int:
    if not args.prometheus:
        raise UsageError("give --prometheus URL (the Prometheus scraping every sidecar) or AURA_MONITOR_PROMETHEUS_URL")
    if not args.prometheus.startswith(("http://", "https://")):
        raise UsageError(f"--prometheus must be an http:// or https:// URL, got {args.prometheus!r}")
    fleet = asyncio.run(_read(args.prometheus))
    if args.output == "json":
        print_json(fleet.model_dump(mode="json", by_alias=True))
        return 0
    wide = args.output == "wide"
    nodes, jobs = _node_rows(fleet.nodes, wide), _job_rows(fleet.stalled, wide)
    notes = [_summary(fleet), *fleet.warnings, *(n.message for n in fleet.nodes if n.message)]
    if stdout_is_terminal():
        console = Console()
        console.print(_rich(*nodes, "Nodes"))
        console.print(_rich(*jobs, "Stalled jobs") if fleet.stalled else "No stalled job in the fleet.")
        for note in notes:
            console.print(markup_safe(note))
    else:
        print(plain_table(*nodes), "", plain_table(*jobs), "", *notes, sep="\n", flush=True)
    return 0
