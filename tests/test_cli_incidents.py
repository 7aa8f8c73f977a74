"""`aura-monitor incidents` against a real server: the table, wide and JSON outputs, and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aura_monitor.cli.main import main
from tests.support import wait_for
from tests.support.aura_writer import RUNNING, AuraJob
from tests.support.live_server import live_server

POLLING: dict[str, Any] = {"watch": "polling", "poll_interval": 0.2}


def test_incidents_lists_a_stall_as_a_table_wide_and_json(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    job = AuraJob(jobs_dir, id="stuck-render", status=RUNNING, created=now - 400, started=now - 390)
    job.progress(now - 300, "Render", 30)
    job.write()
    with live_server(jobs_dir, stall_threshold=2.0, **POLLING) as server:
        wait_for(lambda: httpx.get(f"{server.url}/api/incidents", timeout=10).json()["count"] == 1, what="incident")
        assert main(["incidents", "--url", server.url]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["STARTED", "JOB", "STAGE", "VERDICT", "RESOLUTION", "LASTED"]
        assert table[1].split()[1:3] == ["stuck-render", "render"] and table[1].split()[-1] == "open"
        assert main(["incidents", "--url", server.url, "-o", "wide", "--open"]) == 0
        assert "TIMELINE" in capsys.readouterr().out
        assert main(["incidents", "--url", server.url, "-o", "json", "--since", "1h"]) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["count"] == 1 and body["incidents"][0]["timeline"][0]["code"]
        assert main(["incidents", "--url", server.url, "--closed", "-o", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == {"incidents": [], "count": 0}


def test_incidents_with_an_unknown_verdict_is_a_one_line_usage_error(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with live_server(jobs_dir, **POLLING) as server:
        assert main(["incidents", "--url", server.url, "--verdict", "sleepy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown verdict 'sleepy'" in err


def test_incidents_without_a_sidecar_says_so_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["incidents", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the sidecar" in capsys.readouterr().err
