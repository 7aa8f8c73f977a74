"""The runbooks page the alerts link to, served by a real uvicorn server, and its anchors."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from aura_monitor.api import runbooks
from tests.support.live_server import live_server
from tests.support.live_stack import rules

pytestmark = pytest.mark.timeout(60)


def test_the_sidecar_serves_one_anchored_runbook_section_per_alert(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        response = httpx.get(f"{server.url}/runbooks", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]  # a page without scripts
    ids = set(re.findall(r'<h3 id="([^"]+)">', response.text))
    assert {rule.name.lower() for rule in rules() if rule.is_alert} <= ids
    assert '<h3 id="aurajobstalled">AuraJobStalled</h3>' in response.text
    assert "<table>" in response.text  # the verdict table of AuraJobStalled is rendered, not left as pipes


def test_the_openapi_docs_still_answer_beside_the_runbooks(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        docs = httpx.get(f"{server.url}/docs", timeout=10)
        openapi = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/runbooks" not in openapi["paths"]  # a page for people, not part of the API contract


def test_raw_html_in_the_runbook_source_is_shown_as_text_never_run() -> None:
    page = runbooks.render("### Aura<b>X</b>\n\n<script>alert(1)</script>\n")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert runbooks.anchors("### AuraJobStalled\n\n## Two words\n") == ["aurajobstalled", "two-words"]
