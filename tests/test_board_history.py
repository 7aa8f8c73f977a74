"""The board's History view in Debian's Chromium, over a real server whose history holds real stalls: the chart,
top causes, stage durations and incident list agree with the API; the 503 and empty states say so."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.support import wait_for
from tests.support.board import PageProblems, finished_job, running_job, screenshot, stuck_on_provider
from tests.support.board_fixtures import OpenBoard, Serve

ROOT = Path(__file__).resolve().parents[1]
STALL: dict[str, Any] = {"stall_threshold": 1, "finalizing_threshold": 600, "rediagnose_interval": 1}


def _api(server_url: str, path: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{server_url}{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _seed(jobs_dir: Path, url: str) -> dict[str, Any]:
    """Real stalls (quiet past the 1 s threshold): one recovers, one completes, one fails, one stays open."""
    running_job(jobs_dir, "quiet-recovers", stage="Render", percent=20.0, age=60)
    running_job(jobs_dir, "quiet-completes", stage="Render", percent=70.0, age=90)
    stuck_on_provider(jobs_dir, "provider-fails")
    stuck_on_provider(jobs_dir, "provider-open")
    wait_for(lambda: _api(url, "api/incidents", open="true")["count"] == 4, timeout=30, what="four open incidents")
    wait_for(
        lambda: {i["verdict"] for i in _api(url, "api/incidents")["incidents"]} >= {"upstream_errors"},
        timeout=30,
        what="the provider stalls diagnosed as upstream errors",
    )
    running_job(jobs_dir, "quiet-recovers", stage="Render", percent=35.0, age=62)
    finished_job(jobs_dir, "quiet-completes", "completed", age=95, took=94)
    finished_job(jobs_dir, "provider-fails", "failed", age=320, took=319, stage="TTS")
    wait_for(lambda: _api(url, "api/incidents", open="false")["count"] == 3, timeout=30, what="three closed")
    # The recovered job may stall again before it ends (1 s threshold): a fifth incident, closed by completing.
    finished_job(jobs_dir, "quiet-recovers", "completed", age=70, took=69)
    wait_for(lambda: _api(url, "api/incidents", open="true")["count"] == 1, timeout=30, what="one left open")
    body = _api(url, "api/incidents")
    resolutions = {i["jobId"]: i["resolution"] for i in reversed(body["incidents"])}  # the first of each job
    assert resolutions["quiet-recovers"] == "recovered" and resolutions["provider-fails"] == "failed", resolutions
    assert len({i["verdict"] for i in body["incidents"]}) >= 2, body  # several verdicts to stack and rank
    return body


def _open_history(open_board: OpenBoard, url: str, **kwargs: Any) -> Page:
    page = open_board(f"{url}#view=history", **kwargs)
    expect(page.locator('[data-part="history"]')).to_have_attribute("data-state", "live", timeout=10_000)
    return page


def test_the_history_view_draws_real_stalls_as_the_api_counts_them(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    server = serve(**STALL)
    body = _seed(jobs_dir, server.url.rstrip("/") + "/")
    stats = _api(server.url, "api/stats", window="24h")
    page = _open_history(open_board, server.url)
    expect(page.locator("#tab-history")).to_have_attribute("aria-selected", "true")

    # The chart: 24 hourly bar groups; each counts the incidents whose stall began in its hour.
    groups = page.locator("svg.incident-chart g.bucket")
    expect(groups).to_have_count(24)
    drawn = 0
    for group in groups.all():
        start = datetime.fromisoformat(group.get_attribute("data-start") or "").timestamp()
        end = datetime.fromisoformat(group.get_attribute("data-end") or "").timestamp()
        expected = sum(start <= datetime.fromisoformat(i["startedAt"]).timestamp() < end for i in body["incidents"])
        assert int(group.get_attribute("data-count") or -1) == expected
        stacked = sum(int(r.get_attribute("data-count") or 0) for r in group.locator("rect").all())
        assert stacked == expected
        drawn += expected
    total = body["count"]
    assert drawn == total >= 4
    # The text alternative says the same: one row per non-empty hour, totalling every incident.
    table_rows = page.locator('[data-part="history-chart-table"] tbody tr')
    assert sum(int(r.locator("td").first.inner_text()) for r in table_rows.all()) == total

    # Top causes: verdicts ranked by count, as /api/incidents counts them.
    counts = Counter(i["verdict"] for i in body["incidents"])
    causes = page.locator(".causes li")
    expect(causes).to_have_count(len(counts))
    shown = [(li.get_attribute("data-verdict"), int(li.get_attribute("data-count") or 0)) for li in causes.all()]
    assert dict(shown) == dict(counts)
    assert [n for _, n in shown] == sorted(counts.values(), reverse=True)
    expect(causes.first).to_contain_text(f"{shown[0][1]} · {round(100 * shown[0][1] / total)}%")

    # Stage durations: p50/p95 and the stall rate of every stage /api/stats answers.
    assert stats["stages"], stats
    stages = page.locator(".stage-bars li")
    expect(stages).to_have_count(len(stats["stages"]))
    for name, figures in stats["stages"].items():
        item = page.locator(f'.stage-bars li[data-stage="{name}"]')
        p50, p95 = figures["durationSeconds"]["p50"], figures["durationSeconds"]["p95"]
        assert item.get_attribute("data-p50") == ("" if p50 is None else _js_number(p50))
        assert item.get_attribute("data-p95") == ("" if p95 is None else _js_number(p95))
        assert item.get_attribute("data-runs") == str(figures["runs"])
        if figures["stallRate"] is not None:
            expect(item).to_contain_text("stall rate")

    # The list: the open incident first, then the closed ones newest first.
    rows = page.locator("tr.incident")
    expect(rows).to_have_count(total)
    expect(rows.first).to_have_attribute("data-open", "true")
    expect(rows.first.locator("th")).to_contain_text("provider-open")
    closed = sorted((i for i in body["incidents"] if not i["open"]), key=lambda i: i["startedAt"], reverse=True)
    assert [r.locator("th").inner_text().split(" ")[0] for r in rows.all()[1:]] == [i["jobId"] for i in closed]

    # A row opens to its verdict timeline, evidence and the job's explain, which answers.
    failed = next(i for i in body["incidents"] if i["jobId"] == "provider-fails")
    assert failed["resolution"] == "failed"
    row = page.locator(f'tr.incident[data-incident="{failed["id"]}"]')
    toggle = row.locator("button.disclosure")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    detail = page.locator(f"#incident-{failed['id']}")
    expect(detail).to_be_visible()
    expect(detail.locator(".verdicts li[data-code]")).to_have_count(len(failed["timeline"]) + 1)
    for item in failed["timeline"]:
        expect(detail.locator(f'.verdicts li[data-code="{item["code"]}"]').first).to_be_visible()
    expect(detail.locator(".verdicts li.end")).to_contain_text("failed")
    expect(detail.locator('[data-part="evidence"]')).not_to_be_empty(timeout=10_000)
    link = detail.locator('a[data-part="explain"]')
    href = link.get_attribute("href") or ""
    explained = httpx.get(f"{server.url}{href}", timeout=10)
    assert explained.status_code == 200 and explained.json()["jobId"] == "provider-fails"
    toggle.press("Enter")  # the keyboard closes it again
    expect(detail).to_be_hidden()

    # The window selector: 7 days in 6-hour buckets, kept in the URL.
    page.locator('[data-part="history-window"]').select_option("7d")
    expect(groups).to_have_count(28, timeout=10_000)
    expect(page).to_have_url(_re("window=7d"))
    assert sum(int(g.get_attribute("data-count") or 0) for g in groups.all()) == total


def _js_number(value: float) -> str:
    """How JavaScript prints a number into an attribute: 12.0 as "12"."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _re(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


def test_arrow_keys_switch_between_the_three_views_and_the_url_follows(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard, problems: PageProblems
) -> None:
    server = serve()
    problems.expect_http(404)  # passing the Fleet tab polls /api/fleet: off without --prometheus-url, a 404
    page = open_board(server.url)
    page.locator("#tab-node").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-fleet")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-history")).to_be_focused()
    expect(page.locator("#history-view")).to_be_visible()
    expect(page.locator("#node-view")).to_be_hidden()
    expect(page).to_have_url(_re("#view=history"))
    # A fresh history: the view says there is none yet instead of drawing nothing.
    expect(page.locator('[data-part="history"]')).to_have_attribute("data-state", "empty", timeout=10_000)
    expect(page.locator('[data-part="history-status"]')).to_contain_text("No history yet")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-node")).to_be_focused()
    expect(page.locator("#node-view")).to_be_visible()
    expect(page.locator("#history-view")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#tab-history")).to_have_attribute("aria-selected", "true")


def test_a_history_that_cannot_be_read_shows_history_unavailable_with_the_reason(
    jobs_dir: Path, tmp_path: Path, serve: Serve, open_board: OpenBoard, problems: PageProblems
) -> None:
    broken = tmp_path / "history-is-a-directory"
    broken.mkdir()  # sqlite cannot open a directory: every read of the history fails, the rest works
    server = serve(history=f"sqlite:///{broken}")
    problems.expect_http(503)
    page = open_board(f"{server.url}#view=history")
    history = page.locator('[data-part="history"]')
    expect(history).to_have_attribute("data-state", "unavailable", timeout=10_000)
    status = page.locator('[data-part="history-status"]')
    expect(status).to_contain_text("History unavailable")
    expect(status).to_contain_text("watching and detection go on")


def test_the_history_view_screenshots_in_light_and_dark(jobs_dir: Path, serve: Serve, open_board: OpenBoard) -> None:
    server = serve(**STALL)
    _seed(jobs_dir, server.url)
    for scheme in ("light", "dark"):
        page = _open_history(open_board, server.url, color_scheme=scheme, width=1280, height=1000)
        page.locator("button.disclosure").nth(1).click()
        expect(page.locator(".timeline-row:visible [data-part='evidence']")).not_to_be_empty(timeout=10_000)
        path = screenshot(page, f"history-{scheme}")
        assert path.stat().st_size > 10_000
