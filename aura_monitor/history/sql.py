"""The SQL every history backend shares: writes, migrations and queries, written once for SQLite and PostgreSQL.

Statements use `?` placeholders; a backend whose driver wants `%s` (psycopg) sets `placeholder`. A backend
supplies only what truly differs: how it connects, which driver errors it translates, and how a read opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Sequence
from typing import Any

from .migrations import STEPS
from .ops import IncidentClosed, IncidentOpened, IncidentVerdict, Op, RunSeen, StageDone
from .store import COLUMNS, IncidentQuery, Resolution, StoreUnavailable, incident_body

UPSERT_RUN = (
    "INSERT INTO runs (job_id, attempt, node, created_at, started_at, ended_at, status, output_verified,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt, node) DO UPDATE SET"
    " created_at = COALESCE(excluded.created_at, runs.created_at),"
    " started_at = COALESCE(excluded.started_at, runs.started_at), ended_at = excluded.ended_at,"
    " status = excluded.status, output_verified = excluded.output_verified, updated_at = excluded.updated_at"
)
UPSERT_STAGE = (
    "INSERT INTO stages (job_id, attempt, node, stage, started_at, ended_at, duration_s, progress_updates,"
    " max_gap_s, typical_gap_s, expected_media_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (job_id, attempt, node, stage, started_at) DO UPDATE SET ended_at = excluded.ended_at,"
    " duration_s = excluded.duration_s, progress_updates = excluded.progress_updates,"
    " max_gap_s = excluded.max_gap_s, typical_gap_s = excluded.typical_gap_s"
)
HEALTHY_GAPS = (
    "SELECT stage, max_gap_s, expected_media_s FROM (SELECT s.stage, s.max_gap_s, s.expected_media_s,"
    " ROW_NUMBER() OVER (PARTITION BY s.stage ORDER BY s.ended_at DESC) AS n FROM stages s"
    " JOIN runs r ON r.job_id = s.job_id AND r.attempt = s.attempt AND r.node = s.node"
    " WHERE r.status = 'completed' AND s.max_gap_s IS NOT NULL AND s.ended_at >= ? AND NOT EXISTS"
    " (SELECT 1 FROM incidents i WHERE i.job_id = s.job_id AND i.attempt = s.attempt AND i.node = s.node))"
    " AS healthy WHERE n <= ?"
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM incidents"


class SQLStore:
    """The HistoryStore methods in SQL; subclasses implement `_connect`, `_read` and `_translate`."""

    description: str
    outage_hint: str
    placeholder = "?"
    begin = "BEGIN"
    # Taken inside the migration's transaction so that two sidecars starting at once migrate only once.
    migration_lock: str | None = None
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._conn: Any = None

    # -- what a backend supplies -------------------------------------------------------------------------
    def _connect(self) -> Any:
        """A new autocommit write connection (the driver's own errors propagate)."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of one read on a connection of its own; StoreUnavailable when it cannot."""
        raise NotImplementedError

    def _translate(self, exc: Exception) -> StoreUnavailable:
        raise NotImplementedError

    def _broken(self, exc: Exception) -> bool:
        """True when the write connection must be reopened before the next try."""
        return False

    # -- shared machinery ----------------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _exec(self, conn: Any, text: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self.sql(text), tuple(params))

    def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            conn = self._connect()
        except self.errors as exc:
            raise self._translate(exc) from None
        try:
            self._in_transaction(conn, lambda: self._migrate(conn))
        except self.errors as exc:
            conn.close()
            raise self._translate(exc) from None
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _in_transaction(self, conn: Any, body: Any) -> Any:
        conn.execute(self.begin)
        try:
            result = body()
            conn.execute("COMMIT")
        except BaseException:
            # No transaction left to roll back (or the connection is gone): nothing was committed either way.
            with contextlib.suppress(*self.errors):
                conn.execute("ROLLBACK")
            raise
        return result

    def _migrate(self, conn: Any) -> None:
        if self.migration_lock is not None:
            conn.execute(self.migration_lock)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for version, step in enumerate(STEPS[current:], start=current + 1):
            for statement in step:
                conn.execute(statement)
            self._exec(conn, "INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _write(self, body: Any) -> Any:
        """Run body(conn) in one write transaction; StoreUnavailable (nothing written) when it cannot."""
        self.connect()
        conn = self._conn
        try:
            return self._in_transaction(conn, lambda: body(conn))
        except self.errors as exc:
            if self._broken(exc):
                self.close()  # reopen next time: the server restarted, the file was replaced or the dir fixed
            raise self._translate(exc) from None

    def apply(self, ops: Sequence[Op]) -> None:
        def body(conn: Any) -> None:
            for op in ops:
                self._apply_one(conn, op)

        self._write(body)

    def _apply_one(self, conn: Any, op: Op) -> None:
        if isinstance(op, RunSeen):
            verified = None
            if op.status == "completed":
                verified = int(op.output_path is not None and _nonempty_file(op.output_path))
            self._exec(conn, UPSERT_RUN, (op.job_id, op.attempt, op.node, op.created_at, op.started_at,
                                          op.ended_at, str(op.status), verified, op.at))  # fmt: skip
        elif isinstance(op, StageDone):
            self._exec(conn, UPSERT_STAGE, (op.job_id, op.attempt, op.node, op.stage, op.started_at, op.ended_at,
                                            max(0.0, op.ended_at - op.started_at), op.progress_updates,
                                            op.max_gap_s, op.typical_gap_s, op.expected_media_s))  # fmt: skip
        elif isinstance(op, IncidentOpened):
            self._open(conn, op)
        elif isinstance(op, IncidentVerdict):
            found = self._find_open(conn, op.job_id, op.node)
            if found is not None:
                incident_id, timeline, evidence, _ = found
                self._set_verdict(conn, incident_id, timeline, {**evidence, **op.evidence}, op.at, str(op.verdict))
        elif isinstance(op, IncidentClosed):
            self._exec(
                conn,
                "UPDATE incidents SET ended_at = ?, resolution = ? WHERE job_id = ? AND node = ? AND resolution = ?",
                (op.at, op.resolution, op.job_id, op.node, Resolution.OPEN.value),
            )

    def _find_open(
        self, conn: Any, job_id: str, node: str
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any], int] | None:
        row = self._exec(
            conn,
            "SELECT id, timeline, evidence, attempt FROM incidents WHERE job_id = ? AND node = ? AND resolution = ?"
            " ORDER BY started_at DESC",
            (job_id, node, Resolution.OPEN.value),
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]), json.loads(row[2]), row[3])

    def _set_verdict(
        self, conn: Any, incident_id: str, timeline: list[dict[str, Any]], evidence: dict[str, Any], at: float,
        code: str,
    ) -> None:  # fmt: skip
        if not timeline or timeline[-1]["code"] != code:  # a repeated verdict (e.g. after a restart) adds nothing
            timeline.append({"at": at, "code": code})
        self._exec(
            conn,
            "UPDATE incidents SET verdict = ?, timeline = ?, evidence = ? WHERE id = ?",
            (code, json.dumps(timeline), json.dumps(evidence), incident_id),
        )

    def _open(self, conn: Any, op: IncidentOpened) -> None:
        found = self._find_open(conn, op.job_id, op.node)
        if found is not None:
            incident_id, timeline, evidence, attempt = found
            if attempt == op.attempt:  # the same stall seen again after a restart: continue it
                self._set_verdict(conn, incident_id, timeline, {**evidence, **op.evidence}, op.at, str(op.verdict))
                return
            self._exec(conn, "UPDATE incidents SET ended_at = ?, resolution = ? WHERE id = ?",
                       (op.at, Resolution.RETRIED.value, incident_id))  # fmt: skip
        self._exec(
            conn,
            "INSERT INTO incidents (id, job_id, node, attempt, stage, started_at, ended_at, verdict, timeline,"
            " evidence, resolution) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (uuid.uuid4().hex, op.job_id, op.node, op.attempt, op.stage, op.at, str(op.verdict),
             json.dumps([{"at": op.at, "code": str(op.verdict)}]), json.dumps(op.evidence), Resolution.OPEN.value),
        )  # fmt: skip

    def open_incidents(self, node: str) -> list[dict[str, Any]]:
        rows = self._write(
            lambda conn: self._exec(
                conn, f"{_SELECT} WHERE node = ? AND resolution = ?", (node, Resolution.OPEN.value)
            ).fetchall()
        )
        return [_decoded(row) for row in rows]

    def close_incident(self, incident_id: str, at: float, resolution: Resolution) -> None:
        self._write(
            lambda conn: self._exec(
                conn,
                "UPDATE incidents SET ended_at = ?, resolution = ? WHERE id = ? AND resolution = ?",
                (at, resolution.value, incident_id, Resolution.OPEN.value),
            )
        )

    def prune(self, before: float) -> int:
        def body(conn: Any) -> int:
            removed = self._exec(
                conn, "DELETE FROM incidents WHERE resolution <> ? AND ended_at < ?", (Resolution.OPEN.value, before)
            ).rowcount
            removed += self._exec(conn, "DELETE FROM stages WHERE ended_at < ?", (before,)).rowcount
            removed += self._exec(conn, "DELETE FROM runs WHERE updated_at < ?", (before,)).rowcount
            return int(removed)

        return int(self._write(body))

    # -- readers (API threads) -------------------------------------------------------------------------------
    def incidents(self, query: IncidentQuery) -> tuple[list[dict[str, Any]], int]:
        where, params = _where(query)
        total = self._read(self.sql(f"SELECT COUNT(*) FROM incidents{where}"), params)
        rows = self._read(self.sql(f"{_SELECT}{where} ORDER BY started_at DESC LIMIT ?"), [*params, query.limit])
        return [_decoded(row) for row in rows], int(total[0][0]) if total else 0

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(COLUMNS)}, evidence FROM incidents WHERE id = ?"
        rows = self._read(self.sql(sql), [incident_id])
        if not rows:
            return None
        return _decoded(rows[0][:-1], json.loads(rows[0][-1]))

    def stage_rows(self, since: float) -> list[tuple[str, float | None]]:
        rows = self._read(self.sql("SELECT stage, duration_s FROM stages WHERE ended_at >= ?"), [since])
        return [(str(stage), duration) for stage, duration in rows]

    def incident_rows(self, since: float) -> list[dict[str, Any]]:
        rows = self._read(self.sql(f"{_SELECT} WHERE started_at >= ?"), [since])
        return [_decoded(row) for row in rows]

    def healthy_stage_gaps(self, since: float, per_stage: int) -> list[tuple[str, float, float | None]]:
        rows = self._read(self.sql(HEALTHY_GAPS), [since, per_stage])
        return [(str(stage), float(gap), None if media is None else float(media)) for stage, gap, media in rows]


def _decoded(row: Sequence[Any], evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    values = list(row)
    values[COLUMNS.index("timeline")] = json.loads(values[COLUMNS.index("timeline")])
    return incident_body(values, evidence)


def _where(query: IncidentQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.since is not None:
        clauses.append("started_at >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("started_at < ?")
        params.append(query.until)
    if query.verdicts:
        clauses.append(f"verdict IN ({', '.join('?' for _ in query.verdicts)})")
        params.extend(query.verdicts)
    if query.stage is not None:
        clauses.append("stage = ?")
        params.append(query.stage)
    if query.open is not None:
        clauses.append("resolution = ?" if query.open else "resolution <> ?")
        params.append(Resolution.OPEN.value)
    if query.node is not None:
        clauses.append("node = ?")
        params.append(query.node)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _nonempty_file(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False
