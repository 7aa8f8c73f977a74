"""The live web board: `GET /` and its static assets, served from the package's `board/` data."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(include_in_schema=False)

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\.(?:css|js|svg)")
# The page talks to the API over relative URLs, so it also works behind a path-prefixing proxy.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _not_found(name: str) -> HTTPException:
    return HTTPException(404, f"the board has no asset {name[:80]!r}")


@cache
def _asset(name: str) -> tuple[bytes, str]:
    """Bytes and ETag of one file of aura_monitor/board; read once, the package does not change under us."""
    try:
        data = resources.files("aura_monitor").joinpath("board", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise _not_found(name) from None
    return data, '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


def _serve(request: Request, name: str) -> Response:
    data, etag = _asset(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache", **_SECURITY_HEADERS}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    suffix = name[name.rfind(".") :]
    return Response(data, media_type=_MEDIA_TYPES[suffix], headers=headers)


@router.get("/", response_class=Response)
def board_page(request: Request) -> Response:
    """The board's single page."""
    return _serve(request, "index.html")


@router.get("/board/{name}", response_class=Response)
def board_asset(request: Request, name: str) -> Response:
    """One stylesheet, script or icon of the board."""
    if not _ASSET_NAME.fullmatch(name):
        raise _not_found(name)
    return _serve(request, name)
