"""A readable explain report: rich panels on a terminal, plain full-length lines off one."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .terminal import inert_data

_COLOURS = {"critical": "bold red", "warning": "yellow", "info": "green"}


# On a terminal the report shows the last lines of the log tail; `-o wide` shows all that the body holds.
LOG_LINES = 10


def render(body: dict[str, Any], console: Console, *, wide: bool = False) -> None:
    # Record text (messages, log lines, paths) is made inert once here; below, only Text objects (which
    # never parse markup) carry it.
    body = inert_data(body)
    verdict = body["findings"][0]
    colour = _COLOURS.get(verdict["severity"], "white")
    head = Text()
    head.append(f"{body['jobId']}  ", style="bold")
    head.append(f"{body['verdict']}", style=colour)
    state = f"{body['status']} · {body['stage']} · {body['percent']}%" if body["status"] else "record unreadable"
    head.append(f"   {state}")
    if body["stalled"]:
        head.append(f"   STALLED {body['secondsSinceProgress']:.0f}s / {body['thresholdSeconds']:g}s", style="bold red")
    console.print(Panel(Group(head, Text(body["summary"])), title="aura-monitor explain", border_style=colour))
    for finding in body["findings"]:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        for item in finding["evidence"]:
            table.add_row(item["source"], item["fact"])
        todo = Text("\n".join(f"→ {step}" for step in finding["remediation"]), style="cyan")
        title = f"{finding['code']} ({finding['severity']}, confidence {finding['confidence']:.0%})"
        console.print(
            Panel(
                Group(Text(finding["summary"]), table, todo),
                title=Text(title),
                border_style=_COLOURS.get(finding["severity"], "white"),
                title_align="left",
            )
        )
    if body["notSeen"]:
        console.print(
            Text("Not seen: " + "; ".join(f"{g['source']}: {g['fact']}" for g in body["notSeen"]), style="dim")
        )
    if body["logTail"]:
        console.print(Text("Log tail:", style="bold"))
        for line in body["logTail"] if wide else body["logTail"][-LOG_LINES:]:
            console.print(Text(f"  {line['text']}", style="dim"), soft_wrap=True)
    if board := body.get("links", {}).get("board"):
        console.print(Text(f"On the board: {board}"), soft_wrap=True)  # soft-wrapped: a cut URL does not open


def _state(body: dict[str, Any]) -> str:
    if not body["status"]:
        return "record unreadable"
    state = f"{body['status']} · {body['stage']} · {body['percent']}%"
    if body["stalled"]:
        state += f" · STALLED {body['secondsSinceProgress']:.0f}s / {body['thresholdSeconds']:g}s"
    return state


def plain(body: dict[str, Any], *, wide: bool = False) -> str:
    """The report as plain lines for a pipe or a ticket: nothing cut, no colour, no box drawing."""
    body = inert_data(body)
    lines = [f"{body['jobId']}: {body['verdict']} ({_state(body)})", body["summary"]]
    for finding in body["findings"]:
        lines.append("")
        lines.append(f"{finding['code']} ({finding['severity']}, confidence {finding['confidence']:.0%}): ")
        lines[-1] += finding["summary"]
        lines += [f"  {item['source']}: {item['fact']}" for item in finding["evidence"]]
        lines += [f"  -> {step}" for step in finding["remediation"]]
    if body["notSeen"]:
        lines += ["", "Not seen: " + "; ".join(f"{g['source']}: {g['fact']}" for g in body["notSeen"])]
    if body["logTail"]:
        lines += ["", "Log tail:"]
        tail = body["logTail"] if wide else body["logTail"][-LOG_LINES:]
        lines += [f"  {line['text']}" for line in tail]
    if board := body.get("links", {}).get("board"):
        lines += ["", f"On the board: {board}"]
    return "\n".join(lines)
