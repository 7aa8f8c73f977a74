"""The board's History view in Debian's Chromium, over a real server whose history holds real stalls: the chart,
top causes, stage durations and incident list agree with the API; the 503 and empty states say so."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, Request, expect

from aura_monitor.config import load_settings
from aura_monitor.history.ops import IncidentClosed, IncidentOpened, IncidentVerdict, StageDone
from aura_monitor.history.sqlite import SQLiteStore
from aura_monitor.jobs.verdicts import Verdict
from tests.support import wait_for
from tests.support.board import (
    CONTRAST_FAILURES,
    PageProblems,
    finished_job,
    running_job,
    screenshot,
    stuck_on_provider,
)
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
    # Switched twice in a row: the view settles on the last choice well before the next 30 s poll.
    select = page.locator('[data-part="history-window"]')
    select.select_option("30d")
    select.select_option("24h")
    expect(groups).to_have_count(24, timeout=10_000)
    expect(page.locator('[data-part="history-status"]')).to_contain_text("last 24 hours")


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
    history_reads: list[str] = []

    def note(request: Request) -> None:
        if "/api/incidents" in request.url:
            history_reads.append(request.url)

    page.on("request", note)
    expect(page.locator('[data-part="history"]')).to_have_attribute("data-state", "loading")
    assert history_reads == []  # the hidden History view reads nothing
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
    assert history_reads  # shown: it read the history
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


def test_the_history_view_meets_wcag_aa_contrast_in_light_and_dark_and_is_screenshotted(
    jobs_dir: Path, serve: Serve, open_board: OpenBoard
) -> None:
    server = serve(**STALL)
    _seed(jobs_dir, server.url)
    for scheme in ("light", "dark"):
        page = _open_history(open_board, server.url, color_scheme=scheme, width=1280, height=1000)
        page.locator("button.disclosure").nth(1).click()
        expect(page.locator(".timeline-row:visible [data-part='evidence']")).not_to_be_empty(timeout=10_000)
        report = page.evaluate(CONTRAST_FAILURES)
        assert report["checked"] > 40, report  # status, chart labels, causes, stages, list and timeline were read
        assert report["failures"] == [], f"texts below WCAG AA in the {scheme} theme: {report['failures']}"
        path = screenshot(page, f"history-{scheme}")
        assert path.stat().st_size > 10_000


def _a_day_of_history(path: Path, node: str) -> None:
    """A render node's last day, written through the store as the sidecar writes it: 120 stage runs across five
    stages and 26 stalls spread over the hours, each with its verdict timeline and end (two still open)."""
    store = SQLiteStore(path)
    now = time.time()
    typical = {"script": 40.0, "tts": 95.0, "images": 150.0, "render": 420.0, "finalize": 35.0}
    ops: list[Any] = []
    for run in range(24):
        begin = now - 23.5 * 3600 + run * 3500
        for index, (stage, seconds) in enumerate(typical.items()):
            took = seconds * (0.8 + 0.5 * ((run * 7 + index * 3) % 10) / 10)
            ops.append(StageDone(f"job-{run:02d}", 1, node, stage, begin, begin + took, 20, 4.0, 2.0, 90.0))
            begin += took
    stalls = [  # (hours ago, stage, verdicts in order, resolution)
        (22.6, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (21.2, "render", [Verdict.NO_PROGRESS, Verdict.PROGRESS_CAPPED], "completed"),
        (19.9, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (19.4, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "failed"),
        (17.1, "images", [Verdict.NO_PROGRESS], "recovered"),
        (15.8, "render", [Verdict.NO_PROGRESS, Verdict.PROCESS_DEAD], "failed"),
        (14.3, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (12.7, "render", [Verdict.NO_PROGRESS, Verdict.PROGRESS_CAPPED], "completed"),
        (11.9, "render", [Verdict.NO_PROGRESS, Verdict.PROCESS_HUNG], "cancelled"),
        (11.6, "render", [Verdict.NO_PROGRESS, Verdict.PROCESS_HUNG], "retried"),
        (10.2, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (9.8, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (9.5, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "failed"),
        (8.1, "finalize", [Verdict.NO_PROGRESS, Verdict.DISK_FULL], "failed"),
        (7.9, "finalize", [Verdict.NO_PROGRESS, Verdict.DISK_FULL], "failed"),
        (6.4, "render", [Verdict.NO_PROGRESS, Verdict.PROGRESS_CAPPED], "completed"),
        (5.2, "finalize", [Verdict.NO_PROGRESS, Verdict.OUTPUT_INVALID], "failed"),
        (4.6, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (3.7, "render", [Verdict.NO_PROGRESS, Verdict.PROCESS_DEAD], "failed"),
        (3.1, "images", [Verdict.NO_PROGRESS], "recovered"),
        (2.4, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (2.2, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], "recovered"),
        (1.5, "render", [Verdict.NO_PROGRESS, Verdict.PROGRESS_CAPPED], "completed"),
        (0.9, "render", [Verdict.NO_PROGRESS, Verdict.PROCESS_HUNG], "failed"),
        (0.4, "tts", [Verdict.NO_PROGRESS, Verdict.UPSTREAM_ERRORS], None),
        (0.1, "render", [Verdict.NO_PROGRESS], None),
    ]
    for n, (hours, stage, verdicts, resolution) in enumerate(stalls):
        job, at = f"stall-{n:02d}", now - hours * 3600
        summary = f"{verdicts[-1].value.replace('_', ' ')} in stage {stage}"
        ops.append(IncidentOpened(job, node, 1, stage, at, verdicts[0], {"summary": summary}))
        for step, verdict in enumerate(verdicts[1:], start=1):
            ops.append(IncidentVerdict(job, node, at + 20 * step, verdict, {"summary": summary}))
        if resolution:
            ops.append(IncidentClosed(job, node, at + 90 + 60 * (n % 7), resolution))
    store.apply(ops)
    store.close()


def test_a_day_of_history_lands_in_its_hours_and_ranks_its_causes(
    jobs_dir: Path, tmp_path: Path, serve: Serve, open_board: OpenBoard
) -> None:
    path = tmp_path / "history.db"
    node = load_settings(jobs_dir=jobs_dir).node
    _a_day_of_history(path, node)
    server = serve(history=f"sqlite:///{path}")
    body = _api(server.url, "api/incidents", since="24h", limit=1000)
    assert body["count"] == 26
    page = _open_history(open_board, server.url, width=1280, height=1240)
    groups = page.locator("svg.incident-chart g.bucket")
    expect(groups).to_have_count(24)
    for group in groups.all():
        start = datetime.fromisoformat(group.get_attribute("data-start") or "").timestamp()
        end = datetime.fromisoformat(group.get_attribute("data-end") or "").timestamp()
        expected = sum(start <= datetime.fromisoformat(i["startedAt"]).timestamp() < end for i in body["incidents"])
        assert int(group.get_attribute("data-count") or -1) == expected
    counts = Counter(i["verdict"] for i in body["incidents"])
    causes = page.locator(".causes li")
    expect(causes.first).to_have_attribute("data-verdict", Verdict.UPSTREAM_ERRORS.value)
    assert {li.get_attribute("data-verdict"): int(li.get_attribute("data-count") or 0) for li in causes.all()} == counts
    # Seven causes for six colours: the rarest share "other" in the chart and its legend.
    expect(page.locator(".legend li")).to_have_count(7)
    expect(page.locator('svg.incident-chart rect[class="series-other"]').first).to_be_attached()
    expect(page.locator(".stage-bars li")).to_have_count(5)
    expect(page.locator(".stage-bars li").first).to_have_attribute("data-stage", "script")
    page.locator("tr.incident").nth(2).locator("button.disclosure").click()
    expect(page.locator(".timeline-row:visible [data-part='evidence']")).not_to_be_empty(timeout=10_000)
    page.evaluate("window.scrollTo(0, 0)")  # the picture docs/history.md shows starts at the chart
    screenshot(page, "history-a-day")
