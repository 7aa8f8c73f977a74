"""The storage interface every history backend implements (SQLite and PostgreSQL, both on the SQL in sql.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ..exceptions import AuraMonitorError
from ..jobs.model import JobStatus
from .ops import Op


class Resolution(StrEnum):
    RECOVERED = "recovered"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    OPEN = "open"


TERMINAL_RESOLUTION = {
    JobStatus.COMPLETED: Resolution.COMPLETED,
    JobStatus.FAILED: Resolution.FAILED,
    JobStatus.CANCELLED: Resolution.CANCELLED,
}


class StoreUnavailable(AuraMonitorError):
    """The history database cannot be read or written right now (locked, corrupt, full, unreachable)."""


class StoreCorrupt(StoreUnavailable):
    """The database file is not a database any more: it is moved aside and a fresh one created."""


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters of GET /api/incidents; None means "any"."""

    since: float | None = None
    until: float | None = None
    verdicts: tuple[str, ...] = ()
    stage: str | None = None
    open: bool | None = None
    node: str | None = None
    limit: int = 100


class HistoryStore(Protocol):
    """A history backend. Writes come from one writer thread; reads from any thread, each on its own connection."""

    description: str
    outage_hint: str  # what a support engineer checks when writes fail, said in the log line

    def connect(self) -> None:
        """Open (creating and migrating when needed); StoreCorrupt or StoreUnavailable when it cannot."""

    def close(self) -> None: ...

    def apply(self, ops: Sequence[Op]) -> None:
        """Write `ops` in one transaction; StoreUnavailable (nothing written) when it cannot."""

    def open_incidents(self, node: str) -> list[dict[str, Any]]:
        """Incidents of `node` still open (for continuing them after a restart)."""

    def close_incident(self, incident_id: str, at: float, resolution: Resolution) -> None: ...

    def prune(self, before: float) -> int:
        """Delete what ended before `before` (retention); the number of rows removed."""

    def move_aside(self) -> str | None:
        """Set a corrupt database aside (a file renamed; None when the backend cannot) and start afresh."""

    def incidents(self, query: IncidentQuery) -> tuple[list[dict[str, Any]], int]:
        """Incidents matching `query`, newest first, at most query.limit, and how many match in all."""

    def incident(self, incident_id: str) -> dict[str, Any] | None: ...

    def stage_rows(self, since: float) -> list[tuple[str, float | None]]:
        """(stage, duration seconds) of every stage that ended since `since`."""

    def incident_rows(self, since: float) -> list[dict[str, Any]]:
        """Every incident that started since `since`."""

    def healthy_stage_gaps(self, since: float, per_stage: int) -> list[tuple[str, float, float | None]]:
        """(stage, largest progress gap, expected media seconds) of stages that ended since `since` in runs
        that completed without any incident: at most `per_stage` of each stage, the newest (learned thresholds)."""


COLUMNS = ("id", "job_id", "node", "attempt", "stage", "started_at", "ended_at", "verdict", "timeline", "resolution")


def incident_body(row: Sequence[Any], evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API's JSON of an incident row (COLUMNS order); times stay epoch seconds until the API formats them."""
    values = dict(zip(COLUMNS, row, strict=False))
    started, ended = values["started_at"], values["ended_at"]
    body: dict[str, Any] = {
        "id": values["id"],
        "jobId": values["job_id"],
        "node": values["node"],
        "attempt": values["attempt"],
        "stage": values["stage"],
        "startedAt": started,
        "endedAt": ended,
        "durationSeconds": None if ended is None else round(max(0.0, ended - started), 3),
        "verdict": values["verdict"],
        "timeline": values["timeline"],
        "resolution": values["resolution"],
        "open": values["resolution"] == Resolution.OPEN,
    }
    if evidence is not None:
        body["evidence"] = evidence
    return body
