"""`aura-monitor explain JOB_ID`: the diagnosis from the files alone, no server needed."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from ..diagnosis import explain_offline
from .explain_report import render
from .settings import add_settings_flags, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="the job's id (its directory name)")
    parser.add_argument("--json", action="store_true", help="print exactly the body of GET /api/jobs/{id}/explain")
    add_settings_flags(
        parser,
        only=(
            "config",
            "jobs_dir",
            "stall_threshold",
            "finalizing_threshold",
            "finalizing_percent",
            "queued_threshold",
            "stage_thresholds",
            "ffmpeg_log_dir",
            "read_root",
            "disk_floor_mb",
            "unreadable_grace",
        ),
    )


def run(args: argparse.Namespace) -> int:
    diagnosis = explain_offline(settings_from_args(args), args.job_id)
    if args.json:
        json.dump(diagnosis.body, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(diagnosis.body, Console())
    return 0
