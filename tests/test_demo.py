"""`aura-monitor demo --once`: every fault of the reference pipeline yields its verdict from the live sidecar."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from aura_monitor.cli.demo import EXPECTED, demo_jobs


def test_demo_once_reaches_every_expected_verdict(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "aura_monitor", "demo", "--once", "--port", str(port), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout
    for job in demo_jobs():
        row = next(line for line in table.splitlines() if f" {job.name} " in line and "│" in line)
        assert EXPECTED[job.fault] in row and " ok " in row, row
    assert not list((tmp_path / "jobs").glob("*/requests/*.json")), "no control request left behind"
