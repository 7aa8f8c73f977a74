"""Fixtures and helpers of the board tests (registered in conftest.py through pytest_plugins)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.board import BoardServer, PageProblems, launch_chromium, screenshot

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
