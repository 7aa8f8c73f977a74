"""Aura's clients in real Chromium: `EventSource` consumers written the way AURA_API.md section 7 says Aura's
jobs store (`state/jobs.ts` + `sseClient.ts`) and ITA's FinalExport read the sidecar's two streams, while the
Aura test double writes the job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from tests.support import HANG_S, wait_for
from tests.support.aura_lifecycles import STALL_MESSAGE, running, stall_kill, succeed, wait_status
from tests.support.live_server import live_server

# The two consumers, as Aura's code reads the events (field names and settling rules from AURA_API.md §7).
CLIENTS = """
(jobId) => {
  const out = (window.aura = { store: { progress: [], steps: [], statuses: [] }, exportScreen: { progress: [] } });
  // state/jobs.ts: step-progress -> step/progressPct/phase; artifacts.map on job-completed; closes after a
  // terminal event; JSON.parse or .map throwing would leave it reconnecting forever.
  const store = new EventSource(`/api/jobs/${jobId}/events`);
  const s = out.store;
  store.onopen = () => { s.openedAt = performance.now(); };
  store.addEventListener("connected", () => { s.connectedAt = performance.now(); });
  store.addEventListener("job-status", (e) => {
    const d = JSON.parse(e.data);
    s.statuses.push([d.status, d.stage, d.percent]);
  });
  store.addEventListener("step-status", (e) => { const d = JSON.parse(e.data); s.steps.push([d.step, d.phase]); });
  store.addEventListener("step-progress", (e) => {
    const d = JSON.parse(e.data);
    s.progress.push([d.step, d.progressPct, d.phase, typeof d.elapsedTime, "estimatedTimeRemaining" in d]);
  });
  store.addEventListener("job-completed", (e) => {
    const d = JSON.parse(e.data);
    s.done = { artifacts: d.artifacts.map((a) => a.path), video: d.output.videoPath, subtitles: d.output.subtitlePath };
    store.close();
  });
  store.addEventListener("job-failed", (e) => {
    const d = JSON.parse(e.data);
    s.failed = { errorMessage: d.errorMessage, first: d.errors[0].message, logs: d.logs.length };
    store.close();
  });
  store.addEventListener("job-cancelled", (e) => { s.cancelled = JSON.parse(e.data).message; store.close(); });
  store.onerror = () => { s.errors = (s.errors || 0) + 1; };
  // ITA FinalExport: settles only on job-completed or job-failed; job-completed with failed/cancelled rejects.
  const x = out.exportScreen;
  const screen = new EventSource(`/api/jobs/${jobId}/progress/stream`);
  screen.addEventListener("job-progress", (e) => {
    const d = JSON.parse(e.data);
    x.progress.push([d.percent, d.stage, d.status, typeof d.message, "outputPath" in d]);
  });
  const settle = (d) => {
    const status = String(d.status).toLowerCase();
    if (status === "failed" || status === "cancelled") {
      x.rejected = d.errorMessage || d.failureDetails?.message || "failed";
    }
    else x.resolved = d.outputPath || d.output?.videoPath || d.output?.path || d.output?.filePath;
    screen.close();
  };
  screen.addEventListener("job-completed", (e) => settle(JSON.parse(e.data)));
  screen.addEventListener("job-failed", (e) => settle({ ...JSON.parse(e.data), status: "failed" }));
  screen.onerror = () => { x.errors = (x.errors || 0) + 1; };
}
"""


def state(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("() => JSON.parse(JSON.stringify(window.aura))")
    return result


def open_clients(browser: Browser, url: str, job_id: str) -> Page:
    page = browser.new_page()
    page.goto(f"{url}/healthz")  # same origin as the streams, as Aura's frontend behind its proxy
    page.evaluate(CLIENTS, job_id)
    wait_for(lambda: "connectedAt" in state(page)["store"], timeout=5, what="connected within 5 s")
    wait_for(lambda: state(page)["exportScreen"]["progress"], timeout=HANG_S, what="the first job-progress")
    return page


def test_auras_store_and_export_screen_reach_done_in_chromium(browser: Browser, jobs_dir: Path, tmp_path: Path) -> None:
    """Rows: state/jobs.ts + sseClient.ts -> /events; ITA FinalExport -> /progress/stream (resolves with the
    output path); AVS FinalExport -> /events `connected` within 5 s."""
    job = running(jobs_dir, "job")
    video = tmp_path / "Videos" / "out.mp4"
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        page = open_clients(browser, server.url, "job")
        job.write_progress(time.time(), "Rendering", 80, "Rendering 80%")
        wait_for(lambda: state(page)["store"]["progress"], timeout=HANG_S, what="step-progress in the store")
        succeed(job, video)
        wait_for(lambda: "done" in state(page)["store"], timeout=HANG_S, what="the store to reach Done")
        wait_for(lambda: "resolved" in state(page)["exportScreen"], timeout=HANG_S, what="the export screen to settle")
        seen = state(page)
        page.close()
    store, screen = seen["store"], seen["exportScreen"]
    assert store["progress"][0] == ["Rendering", 80, "render", "number", True]
    assert ["Rendering", "render"] in store["steps"] and store["statuses"][-1][0] == "completed"
    assert store["done"] == {
        "artifacts": [str(video), str(video.with_suffix(".srt"))],
        "video": str(video),
        "subtitles": str(video.with_suffix(".srt")),
    }
    assert "errors" not in store  # no throw, no reconnect
    assert screen["resolved"] == str(video) and screen["progress"][-1][2] == "completed"
    assert all(frame[3] == "string" and frame[4] for frame in screen["progress"])


def test_a_stall_killed_job_rejects_the_export_and_fails_the_store_in_chromium(
    browser: Browser, jobs_dir: Path
) -> None:
    """Rows: state/jobs.ts -> /events job-failed (errorMessage, errors[0].message, logs); ITA FinalExport ->
    /progress/stream job-completed with status failed rejects (here with the reason)."""
    job = running(jobs_dir, "job", percent=95, stage="Rendering")
    with live_server(jobs_dir) as server:
        wait_status(server.url, "job", "running")
        page = open_clients(browser, server.url, "job")
        stall_kill(job)
        wait_for(lambda: "failed" in state(page)["store"], timeout=HANG_S, what="the store to see job-failed")
        wait_for(lambda: "rejected" in state(page)["exportScreen"], timeout=HANG_S, what="the export screen to reject")
        seen = state(page)
        page.close()
    assert seen["store"]["failed"] == {"errorMessage": STALL_MESSAGE, "first": STALL_MESSAGE, "logs": 3}
    assert seen["exportScreen"]["rejected"] == STALL_MESSAGE and "cancelled" not in seen["store"]
