"""The SQLite history backend: one file in the state dir, WAL mode, migrated on open."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .migrations import STEPS
from .ops import IncidentClosed, IncidentOpened, IncidentVerdict, Op, RunSeen, StageDone
from .store import COLUMNS, IncidentQuery, Resolution, StoreCorrupt, StoreUnavailable, incident_body

# The writer waits this long for another connection's lock before the batch counts as failed (and is retried).
WRITE_BUSY_S = 1.0
# An API read waits at most this long: a locked database answers 503 quickly instead of holding a worker.
READ_BUSY_S = 0.5
_CORRUPT_WORDS = ("not a database", "malformed", "file is encrypted")


def _translate(exc: Exception, path: Path) -> StoreUnavailable:
    text = str(exc)
    if any(word in text.lower() for word in _CORRUPT_WORDS):
        return StoreCorrupt(f"history database {path} is corrupt ({text})")
    return StoreUnavailable(f"history database {path}: {text}")


class SQLiteStore:
    """HistoryStore on one SQLite file; the writer thread owns the write connection, reads open their own."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        self.description = f"sqlite:///{self.path}"
        self._conn: sqlite3.Connection | None = None

    # -- writer side ---------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=WRITE_BUSY_S, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _translate(exc, self.path) from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise _translate(exc, self.path) from None
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for version, step in enumerate(STEPS[current:], start=current + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in step:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def move_aside(self) -> str | None:
        self.close()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):  # a journal of the bad file must not be replayed into the new one
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError:
            return None
        return str(aside)

    def apply(self, ops: Sequence[Op]) -> None:
        self.connect()
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    self._apply_one(conn, op)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = _translate(exc, self.path)
            if isinstance(error, StoreCorrupt) or "readonly" in str(exc) or "disk I/O" in str(exc):
                self.close()  # reopen next time: the file may have been replaced or the dir fixed
            raise error from None

    def _apply_one(self, conn: sqlite3.Connection, op: Op) -> None:
        if isinstance(op, RunSeen):
            verified = None
            if op.status == "completed":
                verified = int(op.output_path is not None and _nonempty_file(op.output_path))
            conn.execute(
                "INSERT INTO runs (job_id, attempt, node, created_at, started_at, ended_at, status, output_verified,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, attempt, node) DO UPDATE SET"
                " created_at = COALESCE(excluded.created_at, runs.created_at),"
                " started_at = COALESCE(excluded.started_at, runs.started_at), ended_at = excluded.ended_at,"
                " status = excluded.status, output_verified = excluded.output_verified,"
                " updated_at = excluded.updated_at",
                (op.job_id, op.attempt, op.node, op.created_at, op.started_at, op.ended_at, str(op.status),
                 verified, op.at),
            )  # fmt: skip
        elif isinstance(op, StageDone):
            conn.execute(
                "INSERT INTO stages (job_id, attempt, node, stage, started_at, ended_at, duration_s, progress_updates,"
                " max_gap_s, typical_gap_s, expected_media_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, attempt, node, stage, started_at) DO UPDATE SET ended_at = excluded.ended_at,"
                " duration_s = excluded.duration_s, progress_updates = excluded.progress_updates,"
                " max_gap_s = excluded.max_gap_s, typical_gap_s = excluded.typical_gap_s",
                (op.job_id, op.attempt, op.node, op.stage, op.started_at, op.ended_at,
                 max(0.0, op.ended_at - op.started_at), op.progress_updates, op.max_gap_s, op.typical_gap_s,
                 op.expected_media_s),
            )  # fmt: skip
        elif isinstance(op, IncidentOpened):
            self._open(conn, op)
        elif isinstance(op, IncidentVerdict):
            found = self._find_open(conn, op.job_id, op.node)
            if found is not None:
                incident_id, timeline, evidence, _ = found
                self._set_verdict(conn, incident_id, timeline, {**evidence, **op.evidence}, op.at, str(op.verdict))
        elif isinstance(op, IncidentClosed):
            conn.execute(
                "UPDATE incidents SET ended_at = ?, resolution = ? WHERE job_id = ? AND node = ? AND resolution = ?",
                (op.at, op.resolution, op.job_id, op.node, Resolution.OPEN.value),
            )

    def _find_open(
        self, conn: sqlite3.Connection, job_id: str, node: str
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any], int] | None:
        row = conn.execute(
            "SELECT id, timeline, evidence, attempt FROM incidents WHERE job_id = ? AND node = ? AND resolution = ?"
            " ORDER BY started_at DESC",
            (job_id, node, Resolution.OPEN.value),
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]), json.loads(row[2]), row[3])

    def _set_verdict(
        self,
        conn: sqlite3.Connection,
        incident_id: str,
        timeline: list[dict[str, Any]],
        evidence: dict[str, Any],
        at: float,
        code: str,
    ) -> None:
        if not timeline or timeline[-1]["code"] != code:  # a repeated verdict (e.g. after a restart) adds nothing
            timeline.append({"at": at, "code": code})
        conn.execute(
            "UPDATE incidents SET verdict = ?, timeline = ?, evidence = ? WHERE id = ?",
            (code, json.dumps(timeline), json.dumps(evidence), incident_id),
        )

    def _open(self, conn: sqlite3.Connection, op: IncidentOpened) -> None:
        found = self._find_open(conn, op.job_id, op.node)
        if found is not None:
            incident_id, timeline, evidence, attempt = found
            if attempt == op.attempt:  # the same stall seen again after a restart: continue it
                self._set_verdict(conn, incident_id, timeline, {**evidence, **op.evidence}, op.at, str(op.verdict))
                return
            conn.execute(
                "UPDATE incidents SET ended_at = ?, resolution = ? WHERE id = ?",
                (op.at, Resolution.RETRIED.value, incident_id),
            )
        conn.execute(
            "INSERT INTO incidents (id, job_id, node, attempt, stage, started_at, ended_at, verdict, timeline,"
            " evidence, resolution) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (uuid.uuid4().hex, op.job_id, op.node, op.attempt, op.stage, op.at, str(op.verdict),
             json.dumps([{"at": op.at, "code": str(op.verdict)}]), json.dumps(op.evidence), Resolution.OPEN.value),
        )  # fmt: skip

    def open_incidents(self, node: str) -> list[dict[str, Any]]:
        self.connect()
        assert self._conn is not None
        try:
            rows = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM incidents WHERE node = ? AND resolution = ?",
                (node, Resolution.OPEN.value),
            ).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        return [incident_body(row) for row in rows]

    def close_incident(self, incident_id: str, at: float, resolution: Resolution) -> None:
        self.connect()
        assert self._conn is not None
        try:
            self._conn.execute(
                "UPDATE incidents SET ended_at = ?, resolution = ? WHERE id = ? AND resolution = ?",
                (at, resolution.value, incident_id, Resolution.OPEN.value),
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def prune(self, before: float) -> int:
        self.connect()
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            removed = conn.execute(
                "DELETE FROM incidents WHERE resolution <> ? AND ended_at < ?", (Resolution.OPEN.value, before)
            ).rowcount
            removed += conn.execute("DELETE FROM stages WHERE ended_at < ?", (before,)).rowcount
            removed += conn.execute("DELETE FROM runs WHERE updated_at < ?", (before,)).rowcount
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translate(exc, self.path) from None
        return int(removed)

    # -- readers (API threads) -------------------------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []  # nothing written yet
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=READ_BUSY_S)
            try:
                return list(conn.execute(sql, tuple(params)).fetchall())
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return []  # the writer created the file and is migrating it: nothing written yet
            raise _translate(exc, self.path) from None

    def incidents(self, query: IncidentQuery) -> tuple[list[dict[str, Any]], int]:
        where, params = _where(query)
        total = self._read(f"SELECT COUNT(*) FROM incidents{where}", params)
        rows = self._read(
            f"SELECT {', '.join(COLUMNS)} FROM incidents{where} ORDER BY started_at DESC LIMIT ?",
            [*params, query.limit],
        )
        return [_decoded(row) for row in rows], int(total[0][0]) if total else 0

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        rows = self._read(f"SELECT {', '.join(COLUMNS)}, evidence FROM incidents WHERE id = ?", [incident_id])
        if not rows:
            return None
        return _decoded(rows[0][:-1], json.loads(rows[0][-1]))

    def stage_rows(self, since: float) -> list[tuple[str, float | None]]:
        rows = self._read("SELECT stage, duration_s FROM stages WHERE ended_at >= ?", [since])
        return [(str(stage), duration) for stage, duration in rows]

    def incident_rows(self, since: float) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT {', '.join(COLUMNS)} FROM incidents WHERE started_at >= ?", [since])
        return [_decoded(row) for row in rows]

    def healthy_stage_gaps(self, since: float, per_stage: int) -> list[tuple[str, float, float | None]]:
        rows = self._read(
            "SELECT stage, max_gap_s, expected_media_s FROM (SELECT s.stage, s.max_gap_s, s.expected_media_s,"
            " ROW_NUMBER() OVER (PARTITION BY s.stage ORDER BY s.ended_at DESC) AS n FROM stages s"
            " JOIN runs r ON r.job_id = s.job_id AND r.attempt = s.attempt AND r.node = s.node"
            " WHERE r.status = 'completed' AND s.max_gap_s IS NOT NULL AND s.ended_at >= ? AND NOT EXISTS"
            " (SELECT 1 FROM incidents i WHERE i.job_id = s.job_id AND i.attempt = s.attempt AND i.node = s.node))"
            " AS healthy WHERE n <= ?",
            [since, per_stage],
        )
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
