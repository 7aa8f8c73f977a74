"""A small client for Prometheus' HTTP API (`/api/v1/query`): instant queries, answers as samples."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import httpx

from ..exceptions import AuraMonitorError

QUERY_TIMEOUT_S = 5.0


class PrometheusUnavailable(AuraMonitorError):
    """Prometheus could not be reached, or answered with an error instead of data."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"Prometheus at {url} {detail}")
        self.url = url


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an answer: its labels, and its value at `at` (a range selector's last point)."""

    labels: dict[str, str]
    value: float
    at: float


def label_matchers(**labels: str) -> str:
    """`{name="value",...}` with every value quoted safely (PromQL reads Go's escapes, a JSON string is one)."""
    return "{" + ",".join(f"{name}={json.dumps(value)}" for name, value in labels.items()) + "}"


class PrometheusClient:
    """Instant queries against one Prometheus (or anything speaking its API: Thanos Query, Mimir)."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, timeout: float = QUERY_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._timeout = timeout

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """The series `expr` selects now (or at `at`); raises PrometheusUnavailable naming the URL and why."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        try:
            response = await self._client.get(f"{self.base_url}/api/v1/query", params=params, timeout=self._timeout)
        except httpx.TimeoutException:
            raise PrometheusUnavailable(self.base_url, f"did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(self.base_url, f"is unreachable ({type(exc).__name__}: {exc})") from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise PrometheusUnavailable(
                self.base_url,
                f"answered HTTP {response.status_code} without JSON: is --prometheus-url Prometheus' base URL?",
            ) from None
        if body.get("status") != "success":
            raise PrometheusUnavailable(
                self.base_url, f"refused the query {expr!r} ({body.get('errorType')}: {body.get('error')})"
            )
        return _samples(body.get("data") or {})


def _samples(data: dict[str, Any]) -> list[Sample]:
    kind, result = data.get("resultType"), data.get("result") or []
    samples = []
    for item in result:
        if kind == "vector":
            point = item.get("value")
        elif kind == "matrix":
            points = item.get("values") or []
            point = points[-1] if points else None
        else:
            continue
        if not point:
            continue
        value = float(point[1])
        if math.isnan(value):
            continue
        samples.append(Sample(labels=dict(item.get("metric") or {}), value=value, at=float(point[0])))
    return samples
