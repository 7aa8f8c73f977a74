"""The SQLite history backend: one file in the state dir, WAL mode, migrated on open (SQL shared in sql.py)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .sql import SQLStore
from .store import StoreCorrupt, StoreUnavailable

# The writer waits this long for another connection's lock before the batch counts as failed (and is retried).
WRITE_BUSY_S = 1.0
# An API read waits at most this long: a locked database answers 503 quickly instead of holding a worker.
READ_BUSY_S = 0.5
_CORRUPT_WORDS = ("not a database", "malformed", "file is encrypted")


class SQLiteStore(SQLStore):
    """HistoryStore on one SQLite file; the writer thread owns the write connection, reads open their own."""

    begin = "BEGIN IMMEDIATE"  # take the write lock up front: no deadlock upgrading a read lock
    errors = (sqlite3.Error, OSError)
    outage_hint = "check the disk, the directory's permissions, or who else holds the file"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path.absolute()
        self.description = f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=WRITE_BUSY_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process kill
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _translate(self, exc: Exception) -> StoreUnavailable:
        text = str(exc)
        if any(word in text.lower() for word in _CORRUPT_WORDS):
            return StoreCorrupt(f"history database {self.path} is corrupt ({text})")
        return StoreUnavailable(f"history database {self.path}: {text}")

    def _broken(self, exc: Exception) -> bool:
        return isinstance(self._translate(exc), StoreCorrupt) or "readonly" in str(exc) or "disk I/O" in str(exc)

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
            raise self._translate(exc) from None
