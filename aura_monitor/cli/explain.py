"""`aura-monitor explain JOB_ID`: the diagnosis from the files alone, no server needed."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..diagnosis import explain_offline
from .exits import epilog
from .explain_report import plain, render
from .output import FORMATS, print_json, stdout_is_terminal
from .settings import add_settings_flags, settings_from_args

HELP = "Explain a job: verdict, evidence and what to do, from the files alone (-o table|wide|json)."
EPILOG = epilog(
    (
        "0    the job was diagnosed (whatever the verdict)",
        "1    no such job, or the jobs dir does not exist or cannot be read",
    )
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB_ID", help="the job's id (its directory name)")
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="table: the report (default); wide: with the whole log tail; json: exactly the body of "
        "GET /api/jobs/{id}/explain. Off a terminal the report is plain text, never cut",
    )
    parser.add_argument("--json", action="store_true", help="same as -o json")
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
            "external_url",  # the report's links and remediation name the sidecar as people reach it
        ),
    )


def run(args: argparse.Namespace) -> int:
    diagnosis = explain_offline(settings_from_args(args), args.job_id)
    wide = args.output == "wide"
    if args.json or args.output == "json":
        print_json(diagnosis.body)
    elif stdout_is_terminal():
        render(diagnosis.body, Console(), wide=wide)
    else:
        print(plain(diagnosis.body, wide=wide), flush=True)
    return 0
