"""The picture in the README: a realistic board, light and dark."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.board import (
    ARTIFACTS,
    ROOT,
    BoardServer,
    finished_job,
    iso_ago,
    queued_job,
    running_job,
    stuck_on_provider,
)
from tests.support.board_fixtures import OpenBoard, cell, row

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
        # This machine's name: a record naming another host (and no boot id) is not looked for here.
        worker={"pid": dead.pid, "host": socket.gethostname()},
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
