"""Browsers are untrusted clients: an allowed-Host list on every route, no cross-site requests on mutating ones.

Why: a page on another local port (or a `file://` page) can POST to a loopback sidecar, and a DNS-rebound
name can read it. A Host the operator never named is refused (421), and a mutating request a browser sent
from another origin is refused (403). Clients that send no Origin (curl, httpx, scripts) are not browsers:
they pass, and the bearer token still applies to them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from .problems import problem

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Sec-Fetch-Site values a browser sends for a request its own page (or the user) made to this origin.
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """The name part of a Host header or netloc, lower case, brackets of an IPv6 literal removed."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host  # a bare IPv6 literal or a plain name


def _is_ip(name: str) -> bool:
    """An address literal: rebinding needs a DNS name, and probes and scrapers (kubelet, Prometheus) use IPs."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class BrowserGuard:
    """ASGI middleware: 421 for a Host that is not allowed, 403 for a cross-site mutating request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        external = settings.resolved_external_url
        extra = [name.strip() for name in settings.allowed_host if name.strip()]
        self.any_host = "*" in extra
        self.hosts = LOOPBACK_NAMES | {host_name(urlsplit(external).netloc)} | {host_name(n) for n in extra}
        self.external_origin = _origin_of(external)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._host_refusal(headers) or self._origin_refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, title, slug, detail = refusal
        await problem(status, title, detail, slug, scope.get("path"))(scope, receive, send)

    def _host_refusal(self, headers: Headers) -> tuple[int, str, str, str] | None:
        host = headers.get("host")
        # No Host at all is HTTP/1.0 from a script: browsers always send one, so rebinding cannot hide there.
        if host is None or self.any_host or host_name(host) in self.hosts or _is_ip(host_name(host)):
            return None
        shown = host[:100]
        return (
            421,
            "Host not allowed",
            "host-not-allowed",
            f"this sidecar does not answer to Host {shown!r} (a guard against DNS rebinding); if that is how "
            f"clients reach it, set --external-url http://{shown} or add --allowed-host {host_name(shown)} "
            "(AURA_MONITOR_EXTERNAL_URL / AURA_MONITOR_ALLOWED_HOST)",
        )

    def _origin_refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str, str] | None:
        if scope.get("method", "GET") in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.strip().lower()
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
            if origin in (own, self.external_origin):
                return None
            why = (
                f"a page from {origin[:100]!r}" if origin != "null" else "a page with no origin (file:// or sandboxed)"
            )
        else:
            fetch_site = headers.get("sec-fetch-site")
            if fetch_site is None or fetch_site.strip().lower() in _SAME_SITE_FETCH:
                return None  # no browser marks at all: curl, httpx or a script, still bound by the token
            why = f"a {fetch_site[:20]} page"
        return (
            403,
            "Cross-site request refused",
            "cross-site-refused",
            f"{scope.get('method')} {scope.get('path')} was sent by {why}, not by this sidecar's own board "
            f"({self.external_origin}); open the board at that address, or call the API from a script "
            "(no Origin header) with the bearer token",
        )
