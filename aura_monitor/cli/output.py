"""How listing commands print: `-o table|wide|json`, rich on a terminal, full-width plain text off one.

Why plain text off a terminal: rich sizes a table to 80 columns when stdout is a pipe and cuts every
cell (`sta…`, `run…`), which breaks `| grep` and `| awk`. Piped, a table is whitespace-aligned columns
at their full width, `-` for an empty cell, no colour: one row per line, like `kubectl get`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .terminal import inert

FORMATS = ("table", "wide", "json")


def add_output_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help=f"table (default), wide (more columns) or json ({what}); off a terminal tables are never cut",
    )


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any, stream: TextIO | None = None, *, indent: int | None = 2) -> None:
    """JSON with every non-ASCII character escaped, so record text can never reach the terminal raw."""
    out = stream or sys.stdout
    out.write(json.dumps(value, indent=indent, ensure_ascii=True) + "\n")
    out.flush()


def cell(value: object) -> str:
    """A plain-table cell: inert, one line, `-` when empty (so columns split on whitespace stay aligned)."""
    text = " ".join(inert(value).split()) if value not in (None, "") else ""
    return text or "-"


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, never cut; the last column is not padded."""
    grid = [[header.upper().replace(" ", "_") for header in headers], *([cell(v) for v in row] for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(headers))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in grid]
    return "\n".join(lines)
