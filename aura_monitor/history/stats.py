"""Per-stage figures over a window of history: runs, duration quantiles, stall rate, verdicts, time to resolve."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any

from ..exceptions import InvalidQuery
from .store import HistoryStore

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_span(text: str, what: str) -> float:
    """Seconds of "90", "90s", "15m", "24h", "7d" or "2w"; InvalidQuery (a 400 / usage error) otherwise."""
    m = _SPAN.fullmatch(text.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise InvalidQuery(f"{what} {text[:40]!r}: expected a positive duration like 90s, 15m, 24h or 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (a value that occurred), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def stage_stats(store: HistoryStore, since: float) -> dict[str, dict[str, Any]]:
    """Per stage (canonical key): the figures GET /api/stats answers, for stages ended or incidents begun since."""
    durations: dict[str, list[float]] = defaultdict(list)
    for stage, duration in store.stage_rows(since):
        if duration is not None:
            durations[stage].append(duration)
    verdicts: dict[str, Counter[str]] = defaultdict(Counter)
    resolve: dict[str, list[float]] = defaultdict(list)
    for incident in store.incident_rows(since):
        verdicts[incident["stage"]][incident["verdict"]] += 1
        if incident["durationSeconds"] is not None:
            resolve[incident["stage"]].append(incident["durationSeconds"])
    out: dict[str, dict[str, Any]] = {}
    for stage in sorted(set(durations) | set(verdicts)):
        runs = len(durations[stage])
        incidents = sum(verdicts[stage].values())
        out[stage] = {
            "runs": runs,
            "durationSeconds": {"p50": quantile(durations[stage], 0.5), "p95": quantile(durations[stage], 0.95)},
            "incidents": incidents,
            # Stalls per run of the stage; None when the stage never finished in the window.
            "stallRate": round(incidents / runs, 4) if runs else None,
            "incidentsByVerdict": dict(sorted(verdicts[stage].items())),
            "timeToResolutionSeconds": {"p50": quantile(resolve[stage], 0.5), "p95": quantile(resolve[stage], 0.95)},
        }
    return out
