"""`aura-monitor thresholds`: the learned stall thresholds per stage beside the configured ones."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from .client import add_url_flag
from .exits import epilog
from .jobs import fetch
from .output import add_output_flag, plain_table, print_json, stdout_is_terminal
from .terminal import markup_safe

HELP = "Show each stage's stall threshold: learned from healthy runs, or configured (-o table|wide|json)."
EPILOG = epilog(
    (
        "0    the table was printed (even when no stage is learned yet)",
        "1    the sidecar could not be reached",
    )
)

Row = dict[str, Any]


def _seconds(value: object) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else "-"


def _learned(row: Row) -> str:
    rate = row.get("learnedPerMediaSecond")
    if isinstance(rate, int | float):
        return f"{rate:g} s/media s"
    return _seconds(row.get("learnedSeconds"))


COLUMNS = (
    ("stage", lambda r: str(r["stage"])),
    ("configured", lambda r: _seconds(r["configuredSeconds"])),
    ("learned", _learned),
    ("applies", lambda r: str(r["source"])),
    ("basis", lambda r: str(r["basis"])),
)
WIDE = (
    ("runs", lambda r: "-" if r.get("runs") is None else str(r["runs"])),
    ("floor", lambda r: _seconds(r.get("floorSeconds"))),
    ("ceiling", lambda r: _seconds(r.get("ceilingSeconds"))),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_url_flag(parser)
    add_output_flag(parser, "exactly the body of GET /api/thresholds")


def _summary(body: dict[str, Any]) -> str:
    c = body["configured"]
    return (
        f"mode {body['mode']}; configured: default {c['default']:g} s, finalizing {c['finalizing']:g} s"
        f" (from {c['finalizingPercent']:g}%), queued {c['queued']:g} s; learned after {body['learn']['minRuns']}"
        f" healthy runs, between {body['learn']['floorSeconds']:g} s and {body['learn']['ceilingFactor']:g}x configured"
    )


def run(args: argparse.Namespace) -> int:
    body = fetch(args.url, {}, "/api/thresholds")
    if args.output == "json":
        print_json(body)
        return 0
    chosen = COLUMNS + WIDE if args.output == "wide" else COLUMNS
    rows: list[Row] = body["stages"]
    if not stdout_is_terminal():
        print(_summary(body))
        print(plain_table([name for name, _ in chosen], [[value(r) for _, value in chosen] for r in rows]))
        return 0
    grid = Table(title=_summary(body), title_justify="left")
    for name, _ in chosen:
        grid.add_column(name, overflow="fold")
    for row in rows:
        cells = [markup_safe(value(row)) for _, value in chosen]
        cells[3] = f"[green]{cells[3]}[/]" if row["source"] == "learned" else cells[3]
        grid.add_row(*cells)
    Console().print(grid)
    return 0
