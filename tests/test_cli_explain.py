"""`aura-monitor explain` off a terminal, on one, as JSON beside the API's explain, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support import wait_for, write_native
from tests.support.cli import run_in_pty, run_piped
from tests.support.live_server import live_server

LONG_OUTPUT = "/nowhere/" + "a-deeply-nested-folder/" * 6 + "video.mp4"

# Only what the sidecar adds from its own memory (timeline, stream count) and the moment and its cost differ.
SIDECAR_ONLY = {"timeline", "observedBySidecar", "sseSubscribers", "verdicts", "diagnosedAt", "durationMs"}


def test_explain_dash_o_json_is_its_dash_dash_json_and_matches_the_api_field_by_field(jobs_dir: Path) -> None:
    write_native(jobs_dir, "done-1", status="completed", stage="Complete", percent=100, outputPath=LONG_OUTPUT)
    short = run_piped("explain", "done-1", "--jobs-dir", str(jobs_dir), "-o", "json")
    long = run_piped("explain", "done-1", "--jobs-dir", str(jobs_dir), "--json")
    with live_server(jobs_dir) as server:
        wait_for(lambda: len(server.sidecar.tracker) == 1, what="the job tracked")
        api = httpx.get(f"{server.url}/api/jobs/done-1/explain").json()
    assert short.code == long.code == 0, short.err + long.err
    mine, again = json.loads(short.out), json.loads(long.out)
    assert set(mine) == set(again) == set(api)
    for key, value in api.items():
        if key in SIDECAR_ONLY:
            continue
        if key == "findings":  # evidence carries ages ("file last written 3 s ago"): compare the rest
            assert [{**f, "evidence": None} for f in mine[key]] == [{**f, "evidence": None} for f in value]
            assert [len(f["evidence"]) for f in mine[key]] == [len(f["evidence"]) for f in value]
        else:
            assert mine[key] == value, key
    assert mine["verdict"] == "output_missing"


def test_piped_explain_is_plain_text_with_every_value_whole(jobs_dir: Path) -> None:
    write_native(jobs_dir, "done-1", status="completed", stage="Complete", percent=100, outputPath=LONG_OUTPUT)
    done = run_piped("explain", "done-1", "--jobs-dir", str(jobs_dir))
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0] == "done-1: output_missing (completed · Complete · 100.0%)"
    assert f"  {LONG_OUTPUT}: does not exist" in lines
    assert any(line.startswith("  -> Retry the job") for line in lines)
    assert not any(char in done.out for char in "╭│…")


def test_explain_on_a_terminal_draws_panels(jobs_dir: Path) -> None:
    write_native(jobs_dir, "run-1", status="running", stage="Render", percent=40)
    done = run_in_pty("explain", "run-1", "--jobs-dir", str(jobs_dir))
    assert done.code == 0, done.err
    assert "aura-monitor explain" in done.text and "╭" in done.text and "healthy" in done.text


def test_explain_exits_1_for_an_unknown_job_or_jobs_dir_and_2_for_a_bad_id(jobs_dir: Path, tmp_path: Path) -> None:
    unknown = run_piped("explain", "nope", "--jobs-dir", str(jobs_dir))
    no_dir = run_piped("explain", "nope", "--jobs-dir", str(tmp_path / "absent"))
    bad_id = run_piped("explain", "../x", "--jobs-dir", str(jobs_dir))
    assert (unknown.code, no_dir.code, bad_id.code) == (1, 1, 2)
    for done in (unknown, no_dir, bad_id):
        assert done.err.count("\n") == 1 and done.err.startswith("aura-monitor explain: error: ") and done.out == ""
    assert "no job 'nope'" in unknown.err and "cannot read jobs dir" in no_dir.err


def test_explain_shows_the_last_log_lines_and_dash_o_wide_all_of_them(jobs_dir: Path) -> None:
    logs = [f"log line {n:02d}" for n in range(15)]
    write_native(jobs_dir, "run-1", status="running", stage="Render", percent=40, logs=logs)
    table = run_piped("explain", "run-1", "--jobs-dir", str(jobs_dir))
    wide = run_piped("explain", "run-1", "--jobs-dir", str(jobs_dir), "-o", "wide")
    assert table.code == wide.code == 0, table.err + wide.err
    shown = [line.strip() for line in table.out.splitlines() if line.strip().startswith("log line")]
    everything = [line.strip() for line in wide.out.splitlines() if line.strip().startswith("log line")]
    assert shown == logs[-10:] and everything == logs
