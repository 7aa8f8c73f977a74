"""The web board in Debian's Chromium against a real server, real job files and the reference worker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.board_helpers import (
    ARTIFACTS,
    CONTRAST_FAILURES,
    LONG_TASKS,
    ROOT,
    BoardServer,
    PageProblems,
    enqueue,
    finished_job,
    iso_ago,
    launch_chromium,
    queued_job,
    require_ffmpeg,
    running_job,
    screenshot,
    stuck_on_provider,
    worker_process,
)
from tests.support import wait_for

OpenBoard = Callable[..., Page]
Serve = Callable[..., BoardServer]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def serve(jobs_dir: Path) -> Iterator[Serve]:
    servers: list[BoardServer] = []

    def start(**settings: Any) -> BoardServer:
        server = BoardServer(jobs_dir, **settings).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def open_board(browser: Browser, problems: PageProblems, request: pytest.FixtureRequest) -> Iterator[OpenBoard]:
    """Open the board in a fresh context; at the end: a screenshot per page, and no JavaScript error."""
    pages: list[Page] = []

    def open_page(url: str, *, color_scheme: str = "light", width: int = 1440, height: int = 900) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)  # type: ignore[arg-type]
        page = context.new_page()
        problems.watch(page)
        pages.append(page)
        page.goto(url)
        expect(page.locator('[data-part="conn"]')).to_have_attribute("data-state", "live", timeout=10_000)
        return page

    yield open_page
    for index, page in enumerate(pages):
        screenshot(page, f"{request.node.name}-{index}")
        page.context.close()
    assert problems.errors == [], "JavaScript errors on the board:\n" + "\n".join(problems.errors)


def row(page: Page, job_id: str) -> Any:
    return page.locator(f'tr.job[data-id="{job_id}"]')


def cell(page: Page, job_id: str, part: str) -> Any:
    return row(page, job_id).locator(f'[data-part="{part}"]')


def explain(server: BoardServer, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}api/jobs/{job_id}/explain", timeout=10).json()
    return body


# -- the page itself --------------------------------------------------------------------------------------


def test_the_page_and_its_assets_are_served_with_their_types_and_a_strict_policy(serve: Serve) -> None:
    server = serve()
    page = httpx.get(server.url, timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="board/main.js">' in page.text
    script = httpx.get(f"{server.url}board/main.js", timeout=5)
    assert script.headers["content-type"].startswith("text/javascript")
    again = httpx.get(f"{server.url}board/main.js", headers={"If-None-Match": script.headers["etag"]}, timeout=5)
    assert again.status_code == 304
    missing = httpx.get(f"{server.url}board/nothing.js", timeout=5)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    escape = httpx.get(f"{server.url}board/..%2Fapi%2Fboard.py", timeout=5)
    assert escape.status_code == 404


# -- the live table ---------------------------------------------------------------------------------------


def test_the_table_renders_every_job_with_stage_progress_eta_elapsed_and_status(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    running_job(jobs_dir, "render-71", stage="Render", percent=71.5, age=400, message="Encoding 412 of 750 frames")
    queued_job(jobs_dir, "waiting-1", age=20)
    finished_job(jobs_dir, "done-1", "completed", age=600, took=300, outputPath="/srv/renders/done-1.mp4")
    finished_job(
        jobs_dir, "broken-1", "failed", age=900, took=200, error={"code": "E_FFMPEG", "message": "ffmpeg exited with 1"}
    )
    server = serve()
    page = open_board(server.url)

    expect(page.locator("tr.job")).to_have_count(4)
    expect(cell(page, "render-71", "stage")).to_have_text("Render")
    expect(cell(page, "render-71", "pct")).to_have_text("71.5%")
    expect(cell(page, "render-71", "meter")).to_have_attribute("aria-valuenow", "71.5")
    expect(cell(page, "render-71", "status")).to_have_text("Running")
    expect(cell(page, "render-71", "sub")).to_have_text("Encoding 412 of 750 frames")
    expect(cell(page, "render-71", "elapsed")).to_have_text(re.compile(r"^6m 4\ds$"))
    expect(cell(page, "done-1", "elapsed")).to_have_text("5m 00s")
    expect(cell(page, "done-1", "status")).to_have_text("Completed")
    expect(cell(page, "broken-1", "sub")).to_have_text("ffmpeg exited with 1")
    expect(cell(page, "waiting-1", "status")).to_have_text("Queued")
    expect(page.locator('[data-count="running"]')).to_have_text("1")
    expect(page.locator('[data-part="shown"]')).to_have_text("4 jobs")


def test_a_record_update_shows_within_a_second(jobs_dir: Path, serve: Serve, open_board: OpenBoard) -> None:
    running_job(jobs_dir, "moving", stage="Images", percent=50.0, age=60, revision=1)
    server = serve()
    page = open_board(server.url)
    expect(cell(page, "moving", "pct")).to_have_text("50%")
    marker = row(page, "moving").evaluate("el => (el.dataset.probe = 'same-node')")

    written = time.monotonic()
    running_job(jobs_dir, "moving", stage="Render", percent=63.0, age=61, revision=2, message="Encoding")
    expect(cell(page, "moving", "pct")).to_have_text("63%", timeout=1000)
    expect(cell(page, "moving", "stage")).to_have_text("Render", timeout=1000)
    assert time.monotonic() - written < 1.0
    # The row was updated in place, not rebuilt.
    assert row(page, "moving").evaluate("el => el.dataset.probe") == marker == "same-node"

    running_job(jobs_dir, "arrived", stage="Script", percent=5.0, age=1)
    expect(row(page, "arrived")).to_be_visible(timeout=1000)
    shutil.rmtree(jobs_dir / "arrived")
    expect(row(page, "arrived")).to_have_count(0, timeout=5000)


def test_a_stalled_job_gets_a_badge_with_its_verdict_and_how_long_it_is_stuck_against_its_threshold(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    running_job(jobs_dir, "healthy", stage="Render", percent=20.0, age=30)
    server = serve(stall_threshold=1, finalizing_threshold=600, rediagnose_interval=1)
    page = open_board(server.url)
    stuck_on_provider(jobs_dir, "tts-stuck")  # progressed just now, then nothing: stalled 1 s later

    badge = cell(page, "tts-stuck", "badge")
    expect(badge).to_have_text(re.compile(r"^upstream_errors · \d+s / 1s$"), timeout=10_000)
    expect(row(page, "tts-stuck")).to_have_attribute("data-stalled", "true")
    expect(cell(page, "tts-stuck", "sub")).to_contain_text("provider keeps failing")
    expect(page.locator('[data-count="stalled"]')).not_to_have_text("0")
    expect(page).to_have_title(re.compile(r"^\(\d+ stalled\) aura-monitor$"))
    # Stalled jobs come first; the clock keeps ticking between events.
    expect(page.locator("tr.job").first).to_have_attribute("data-stalled", "true")
    first = badge.inner_text()
    expect(badge).not_to_have_text(first, timeout=3000)

    # Filters: stalled only, then a text search.
    page.locator('[data-part="stalled-only"]').check()
    expect(page.locator("tr.job:visible")).to_have_count(int(page.locator('[data-count="stalled"]').inner_text()))
    page.locator('[data-part="stalled-only"]').uncheck()
    page.locator('[data-part="search"]').fill("upstream")
    expect(page.locator("tr.job:visible")).to_have_count(1)
    expect(page.locator('[data-part="shown"]')).to_have_text("1 of 2 jobs")
    page.locator('[data-part="search"]').fill("")

    # Progress again: the badge goes away.
    running_job(jobs_dir, "tts-stuck", stage="TTS", percent=41.0, age=400)
    expect(badge).to_be_hidden(timeout=2000)


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


# -- connection -------------------------------------------------------------------------------------------


def test_the_board_reconnects_after_a_server_restart_and_resyncs_the_table(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    running_job(jobs_dir, "survivor", stage="Render", percent=40.0, age=100)
    running_job(jobs_dir, "goes-away", stage="Images", percent=60.0, age=100)
    server = serve(sse_retry_ms=500)
    page = open_board(server.url)
    indicator = page.locator('[data-part="conn"]')
    expect(page.locator("tr.job")).to_have_count(2)

    server.stop()
    expect(indicator).to_have_attribute("data-state", "reconnecting", timeout=5000)
    expect(indicator).to_contain_text("Reconnecting")
    # While the sidecar is down, the jobs change on disk.
    shutil.rmtree(jobs_dir / "goes-away")
    running_job(jobs_dir, "survivor", stage="Render", percent=88.0, age=110)
    queued_job(jobs_dir, "newcomer", age=1)

    server.start()  # a new sidecar on the same port: new event ids, so the board must resync
    expect(indicator).to_have_attribute("data-state", "live", timeout=15_000)
    expect(indicator).to_have_text("Live")
    expect(row(page, "goes-away")).to_have_count(0)
    expect(row(page, "newcomer")).to_be_visible()
    expect(cell(page, "survivor", "pct")).to_have_text("88%")
    expect(page.locator("tr.job")).to_have_count(2)

    # And it is live again: a new update arrives.
    running_job(jobs_dir, "survivor", stage="Render", percent=90.0, age=111)
    expect(cell(page, "survivor", "pct")).to_have_text("90%", timeout=2000)


# -- scale, themes, contrast ------------------------------------------------------------------------------


def test_a_thousand_jobs_stay_smooth_under_a_stream_of_updates(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    for n in range(1000):
        running_job(jobs_dir, f"job-{n:04d}", stage="Render", percent=float(n % 90), age=100 + n)
    server = serve()
    wait_for(lambda: server.tracked("job-0999"), timeout=30, what="the sidecar to track 1,000 jobs")
    page = open_board(server.url)
    expect(page.locator("tr.job")).to_have_count(1000, timeout=15_000)
    page.evaluate("document.querySelector('tr.job[data-id=\"job-0500\"]').dataset.probe = 'kept'")
    page.evaluate(LONG_TASKS)

    # 3 rounds of 400 updates, as a busy farm would write them.
    for round_ in range(1, 4):
        for n in range(0, 1000, 2 if round_ % 2 else 3):
            running_job(jobs_dir, f"job-{n:04d}", stage="Render", percent=float(n % 90) + round_, age=100 + n)
    expect(cell(page, "job-0998", "pct")).to_have_text(f"{998 % 90 + 3}%", timeout=10_000)
    expect(cell(page, "job-0500", "pct")).to_have_text(f"{500 % 90 + 3}%", timeout=10_000)
    assert page.evaluate("document.querySelector('tr.job[data-id=\"job-0500\"]').dataset.probe") == "kept"
    expect(page.locator("tr.job")).to_have_count(1000)
    long_tasks: list[float] = page.evaluate("window.__long")
    # Generous for a loaded CI machine; a full re-render per event takes seconds here.
    assert max(long_tasks, default=0) < 400, f"long main-thread tasks while streaming: {sorted(long_tasks)[-5:]}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_meets_wcag_aa_contrast_in_both_themes(
    scheme: str, jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    stuck_on_provider(jobs_dir, "tts-stuck", stuck_for=130)
    running_job(jobs_dir, "rendering", stage="Render", percent=70.0, age=200)
    running_job(jobs_dir, "paused-one", stage="Images", percent=60.0, age=200, status="paused")
    queued_job(jobs_dir, "waiting", age=10)
    finished_job(jobs_dir, "done", "completed", age=900, took=300, outputPath="/srv/done.mp4")
    finished_job(jobs_dir, "broken", "failed", age=800, took=100, error={"message": "ffmpeg exited with 1"})
    finished_job(jobs_dir, "stopped", "cancelled", age=700, took=100)
    server = serve()
    page = open_board(server.url, color_scheme=scheme)
    expect(cell(page, "tts-stuck", "badge")).to_contain_text("upstream_errors")
    page.locator('[data-count="stalled"]').hover()
    row(page, "tts-stuck").click()
    expect(page.locator('[data-testid="summary"]')).not_to_be_empty()
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert (background == "rgb(244, 245, 247)") == (scheme == "light")
    report = page.evaluate(CONTRAST_FAILURES)
    assert report["checked"] > 100, report  # the table, the panel, the findings and the log were all read
    assert report["failures"] == [], f"texts below WCAG AA in the {scheme} theme: {report['failures']}"


def test_the_theme_toggle_overrides_the_system_preference_and_is_remembered(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    queued_job(jobs_dir, "waiting", age=10)
    server = serve()
    page = open_board(server.url, color_scheme="light")
    toggle = page.locator('[data-part="theme"]')
    expect(toggle).to_have_text("Theme: auto")
    body_bg = "getComputedStyle(document.documentElement).backgroundColor"
    light = page.evaluate(body_bg)
    toggle.click()
    expect(toggle).to_have_text("Theme: light")
    toggle.click()
    expect(toggle).to_have_text("Theme: dark")
    assert page.evaluate(body_bg) != light
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(body_bg) != light


# -- the picture in the README ----------------------------------------------------------------------------


@pytest.fixture
def farm_dir() -> Iterator[Path]:
    """A short, realistic-looking jobs dir for the picture: /tmp/render-farm-xxxx/Aura/jobs."""
    root = Path(tempfile.mkdtemp(prefix="render-farm-"))
    (root / "Aura" / "jobs").mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_realistic_board_for_the_docs_screenshot(open_board: OpenBoard, farm_dir: Path) -> None:
    """Writes test-artifacts/board/board-{light,dark}.png; with UPDATE_DOCS_SCREENSHOT=1 also docs/board.png."""
    jobs_dir = farm_dir / "Aura" / "jobs"
    dead = subprocess.Popen(["true"])
    dead.wait()
    history = [{"at": iso_ago(30 - i * 3), "percent": 66.0 + i * 0.6, "stage": "Render"} for i in range(10)]
    running_job(
        jobs_dir,
        "wk47-product-tour-1080p",
        stage="Render",
        percent=71.5,
        age=392,
        stagePercent=55.0,
        message="Encoding 1080p: 412 of 750 frames",
        history=history,
    )
    stuck_on_provider(jobs_dir, "narration-es-mx-0193", stuck_for=130)
    running_job(
        jobs_dir,
        "holiday-promo-de-v2",
        stage="Render",
        percent=87.0,
        age=700,
        message="Encoding 1080p: 640 of 750 frames",
        lastProgressAt=iso_ago(95),
        worker={"pid": dead.pid, "host": "render-02"},
        encoder={"pid": dead.pid},
        outputPath=str(farm_dir / "output" / "holiday-promo-de-v2.mp4"),
    )
    running_job(
        jobs_dir,
        "onboarding-ep3",
        stage="Images",
        percent=62.0,
        age=580,
        message="Drawing scene 7 of 12",
        history=[{"at": iso_ago(40 - i * 4), "percent": 58.0 + i * 0.4, "stage": "Images"} for i in range(10)],
    )
    running_job(
        jobs_dir,
        "q4-recap-square",
        stage="Finalize",
        percent=96.0,
        age=1190,
        message="Moving the index to the front (faststart)",
        lastProgressAt=iso_ago(40),
    )
    running_job(jobs_dir, "webinar-cutdown-0412", stage="Script", percent=12.0, age=50, message="Writing the script")
    queued_job(jobs_dir, "support-faq-clip-20", age=8)
    queued_job(jobs_dir, "support-faq-clip-19", age=21)
    finished_job(
        jobs_dir,
        "brand-teaser-vertical",
        "completed",
        age=1700,
        took=291,
        outputPath="/srv/renders/brand-teaser-vertical.mp4",
    )
    finished_job(
        jobs_dir,
        "pricing-update-fr",
        "failed",
        age=2500,
        took=190,
        error={"code": "E_FFMPEG", "message": "ffmpeg exited with 1: Invalid data found when processing input"},
    )
    finished_job(jobs_dir, "release-notes-v2-3", "cancelled", age=2000, took=95, message="Cancelled by user")
    finished_job(jobs_dir, "customer-story-acme", "completed", age=3900, took=388, outputPath="/srv/renders/acme.mp4")
    server = BoardServer(jobs_dir).start()
    try:
        for scheme in ("light", "dark"):
            page = open_board(server.url, color_scheme=scheme)
            expect(cell(page, "narration-es-mx-0193", "badge")).to_have_text(re.compile(r"^upstream_errors · 2m"))
            expect(cell(page, "holiday-promo-de-v2", "badge")).to_have_text(re.compile(r"^process_dead · "))
            row(page, "narration-es-mx-0193").click()
            expect(page.locator('[data-testid="summary"]')).to_contain_text("provider")
            page.locator("#panel-title").blur()
            page.mouse.move(0, 0)
            path = ARTIFACTS / f"board-{scheme}.png"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
            if scheme == "light" and os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
                shutil.copyfile(path, ROOT / "docs" / "board.png")
    finally:
        server.stop()
