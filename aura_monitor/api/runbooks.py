"""`GET /runbooks`: the alert runbooks (package data `runbooks.md`) as one HTML page, an anchor per alert.

Alerts link `<external url>/runbooks#<alert name in lower case>`, so a click in a pager or chat message
opens the sidecar that raised the alert. Not `/docs/...`: FastAPI serves its Swagger UI at `/docs`.
"""

from __future__ import annotations

import html
import re
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from .. import __version__

router = APIRouter(include_in_schema=False)

_SLUG_DROP = re.compile(r"[^a-z0-9 _-]")
_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}"
    "h3{margin-top:2.2rem;border-top:1px solid #d0d7de;padding-top:1rem}h3:target{background:#fff8c5}"
    "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;vertical-align:top}"
    "code{background:#f0f2f4;padding:0 .2rem;border-radius:3px}"
    "@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}code{background:#262c36}"
    "h3:target{background:#3a3000}}"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def slug(title: str) -> str:
    """GitHub's heading anchor: `AuraJobStalled` -> `aurajobstalled`, so the same link works on both."""
    return _SLUG_DROP.sub("", title.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> list[str]:
    """The anchor of every heading of a runbook text, in order."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [slug(tokens[i + 1].content) for i, token in enumerate(tokens) if token.type == "heading_open"]


def render(markdown: str) -> str:
    """The runbook text as a standalone HTML page; raw HTML in the source is escaped, not passed through."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            token.attrSet("id", slug(tokens[i + 1].content))
    body = md.renderer.render(tokens, md.options, {})
    title = html.escape(f"aura-monitor {__version__} runbooks")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style>'
        f"</head><body>{body}</body></html>"
    )


@cache
def _page() -> str:
    """Rendered once: the package's data does not change under a running server."""
    return render(resources.files("aura_monitor").joinpath("api", "runbooks.md").read_text(encoding="utf-8"))


@router.get("/runbooks", response_class=HTMLResponse)
def runbooks_page() -> HTMLResponse:
    """What each alert means and what to do, one anchor per alert (`#aurajobstalled`)."""
    return HTMLResponse(_page(), headers={"Cache-Control": "max-age=300", **_SECURITY_HEADERS})
