"""The board's job panel: the explain report, the keyboard, and retry / cancel with the server's answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import wait_for
from tests.support.board import (
    PageProblems,
    enqueue,
    finished_job,
    queued_job,
    require_ffmpeg,
    running_job,
    stuck_on_provider,
    worker_process,
)
from tests.support.board_fixtures import OpenBoard, Serve, cell, explain, row
from tests.support.learned import seed_healthy_runs

# -- the job panel ----------------------------------------------------------------------------------------


def test_the_job_panel_explains_the_stall_with_findings_timeline_and_log_and_the_keyboard_drives_it(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    stuck_on_provider(jobs_dir, "tts-stuck", stuck_for=130)
    queued_job(jobs_dir, "next-up", age=5)
    server = serve()
    page = open_board(server.url)
    expect(cell(page, "tts-stuck", "badge")).to_have_text(re.compile(r"^upstream_errors · 2m 1\ds / 45s$"))

    # Keyboard only: "/" to search, Tab into the table, arrows, Enter opens, Escape closes.
    page.keyboard.press("/")
    expect(page.locator('[data-part="search"]')).to_be_focused()
    page.locator("tr.job").first.focus()
    expect(row(page, "tts-stuck")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(row(page, "next-up")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(row(page, "tts-stuck")).to_be_focused()
    page.keyboard.press("Enter")

    panel = page.locator('[data-part="panel"]')
    expect(panel).to_be_visible()
    expect(page.locator("#panel-title")).to_be_focused()
    report = explain(server, "tts-stuck")
    assert report["verdict"] == "upstream_errors"
    expect(panel.locator('[data-testid="summary"]')).to_have_text(report["summary"], timeout=5000)
    expect(panel.locator(".verdict-code")).to_have_text("upstream_errors")
    expect(panel.locator(".finding")).to_have_count(len(report["findings"]))
    expect(panel.locator(".finding").first.locator(".remedy li").first).to_have_text(
        report["findings"][0]["remediation"][0]
    )
    expect(panel.locator(".finding").first.locator(".evidence li")).to_have_count(
        len(report["findings"][0]["evidence"])
    )
    expect(panel.locator(".log")).to_contain_text("429 Too Many Requests")
    expect(panel.locator(".timeline")).to_contain_text("stalled")
    expect(panel.locator(".facts")).to_contain_text("Stuck for")
    expect(page).to_have_url(re.compile(r"#job=tts-stuck$"))

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(row(page, "tts-stuck")).to_be_focused()

    # A link with the job in its hash opens the panel directly.
    page.goto(f"{server.url}#job=next-up")
    expect(page.locator("#panel-title")).to_have_text("next-up")
    expect(panel.locator('[data-testid="summary"]')).not_to_be_empty()


def test_a_deep_link_opens_the_jobs_panel_whose_links_and_remediation_use_the_external_url(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    stuck_on_provider(jobs_dir, "tts-linked", stuck_for=130)
    external = "http://example-node:9999"
    server = serve(external_url=external)  # the browser reaches it at 127.0.0.1: a loopback Host always passes
    page = open_board(f"{server.url}#job=tts-linked")
    panel = page.locator('[data-part="panel"]')
    expect(panel).to_be_visible()
    expect(page.locator("#panel-title")).to_have_text("tts-linked")
    links = panel.locator('[data-testid="job-links"]')
    expect(links.locator('[data-link="board"]')).to_have_attribute("href", f"{external}/#job=tts-linked")
    expect(links.locator('[data-link="explain"]')).to_have_attribute("href", f"{external}/api/jobs/tts-linked/explain")
    first = panel.locator(".finding").first.locator(".remedy")
    expect(first).to_contain_text(f"POST {external}/api/jobs/tts-linked/retry")
    expect(panel.locator(".findings")).not_to_contain_text(server.url)
    # The board's own notes name the sidecar by its external URL too, never by a guessed address.
    expect(page.locator('[data-part="conn"]')).to_have_attribute(
        "title", f"Receiving live updates from {external}/api/events"
    )


def test_the_panel_shows_the_verdicts_held_over_the_stall_and_a_stalled_job_has_no_eta(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    stuck_on_provider(jobs_dir, "tts-held", stuck_for=130)
    server = serve()
    page = open_board(server.url)
    expect(cell(page, "tts-held", "badge")).to_have_text(re.compile(r"^upstream_errors"))
    expect(cell(page, "tts-held", "eta")).to_have_text("stalled")

    page.goto(f"{server.url}#job=tts-held")
    panel = page.locator('[data-part="panel"]')
    expect(panel.locator('[data-testid="summary"]')).not_to_be_empty()
    held = explain(server, "tts-held")["verdicts"]
    assert [entry["code"] for entry in held] == ["no_progress", "upstream_errors"]  # the placeholder, refined
    entries = panel.locator('[data-testid="verdicts"] li')
    expect(entries).to_have_count(len(held))
    for entry, shown in zip(held, entries.all(), strict=True):
        expect(shown.locator(".held-code")).to_have_text(entry["code"])
        expect(shown.locator("time")).to_have_attribute("datetime", entry["at"])
    expect(entries.last).to_have_attribute("data-severity", "warning")
    expect(panel.locator(".facts")).to_contain_text("ETA\u2013 (stalled)")  # en dash: the board's "none"


def test_cancel_asks_for_confirmation_and_the_reference_worker_ends_the_job_cancelled(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard, tmp_path: Path
) -> None:
    require_ffmpeg()
    server = serve()
    page = open_board(server.url)
    with worker_process(jobs_dir, tmp_path / "worker.log") as worker:
        job_id = enqueue(jobs_dir, "long-render", "--realtime", "--duration", "60")
        expect(cell(page, job_id, "status")).to_have_text("Running", timeout=30_000)
        row(page, job_id).click()
        cancel = page.locator('[data-part="cancel"]')
        expect(cancel).to_be_enabled()
        dialog = page.locator('[data-part="confirm"]')

        # First time: the user backs out, nothing is sent.
        cancel.click()
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"Cancel job {job_id}?")
        expect(page.locator('[data-part="confirm-no"]')).to_be_focused()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(cancel).to_be_focused()
        assert not (jobs_dir / job_id / "requests" / "cancel.json").exists()
        expect(cell(page, job_id, "status")).to_have_text("Running")

        # Second time: confirmed; the server accepts, the worker honours it.
        cancel.click()
        page.locator('[data-part="confirm-yes"]').click()
        answer = page.locator('[data-part="answer"]')
        expect(answer).to_contain_text("202 Accepted")
        expect(answer).to_have_attribute("data-kind", "ok")
        expect(cell(page, job_id, "status")).to_have_text("Cancelled", timeout=30_000)
        expect(cancel).to_be_disabled()
        assert json.loads((jobs_dir / job_id / "job.json").read_text())["status"] == "cancelled"
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()


def test_the_panel_shows_the_servers_answers_backoff_conflict_and_token(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard, problems: PageProblems
) -> None:
    problems.expect_http(400, 401, 409)
    finished_job(jobs_dir, "was-cancelled", "cancelled", age=300, took=10, message="Cancelled by user")
    running_job(jobs_dir, "about-to-finish", stage="Finalize", percent=97.0, age=300)
    server = serve(token="s3cret-token", retry_backoff=120)
    page = open_board(server.url)
    answer = page.locator('[data-part="answer"]')

    def confirm(action: str) -> None:
        page.locator(f'[data-part="{action}"]').click()
        page.locator('[data-part="confirm-yes"]').click()

    # 401: the token is asked for, kept in sessionStorage, and the request is sent again.
    row(page, "was-cancelled").click()
    confirm("retry")
    expect(answer).to_contain_text("401")
    token_input = page.locator('[data-part="token"]')
    expect(token_input).to_be_focused()
    token_input.fill("s3cret-token")
    token_input.press("Enter")
    expect(answer).to_contain_text("202 Accepted")
    assert page.evaluate("sessionStorage.getItem('aura-monitor.token')") == "s3cret-token"
    expect(page.locator('[data-part="token-state"]')).to_contain_text("A token is set")

    # 400: a second retry inside the backoff shows Retry-After and the retries left.
    finished_job(jobs_dir, "was-cancelled", "cancelled", age=300, took=10, attempt=2, revision=3)
    expect(page.locator('[data-part="retry"]')).to_be_enabled()
    confirm("retry")
    expect(answer).to_contain_text("400 · Retry not allowed now")
    expect(answer).to_contain_text(re.compile(r"Retry-After: \d+"))
    expect(answer).to_contain_text("retries remaining")

    # 409: the job ended while the confirmation was open.
    row(page, "about-to-finish").click()
    page.locator('[data-part="cancel"]').click()
    finished_job(jobs_dir, "about-to-finish", "completed", age=300, took=290, outputPath="/srv/out.mp4")
    expect(cell(page, "about-to-finish", "status")).to_have_text("Completed")
    page.locator('[data-part="confirm-yes"]').click()
    expect(answer).to_have_text(re.compile(r"^409 · Conflict: job about-to-finish already ended completed$"))
    expect(answer).to_have_attribute("data-kind", "problem")


def test_the_panel_names_a_learned_stall_threshold_and_where_it_came_from(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard, tmp_path_factory: pytest.TempPathFactory
) -> None:
    history = tmp_path_factory.mktemp("learned") / "history.db"
    seed_healthy_runs(history, "tts", 25, 5.0)  # p99 5 s x4: a 20 s threshold instead of the configured 45 s
    running_job(jobs_dir, "learned-tts", stage="TTS", percent=30, age=10)
    server = serve(history=f"sqlite:///{history}")
    wait_for(
        lambda: httpx.get(f"{server.url}api/jobs/learned-tts", timeout=10).json().get("thresholdSource") == "learned",
        what="the learned threshold on the job",
    )
    page = open_board(server.url)
    page.goto(f"{server.url}#job=learned-tts")
    facts = page.locator('[data-part="panel"] .facts')
    expect(facts).to_contain_text("Stall threshold")
    expect(facts).to_contain_text("learned: p99 gap 5 s over 25 runs, x4")
