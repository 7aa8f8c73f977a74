"""The PostgreSQL history backend: one database shared by a fleet of sidecars (SQL shared in sql.py).

psycopg 3 is imported when a postgresql:// history is opened, so SQLite users never need it
(`pip install 'aura-monitor[postgres]'`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigError
from .sql import SQLStore
from .store import StoreUnavailable

CONNECT_TIMEOUT_S = 3  # a database that went away fails a write in seconds, not at the TCP timeout
# An API read waits at most this long for the server: a busy database answers 503, not a held worker.
READ_TIMEOUT_MS = 2000
# pg_advisory_xact_lock key: sidecars starting together migrate one at a time (and the second finds it done).
MIGRATION_LOCK_KEY = 0x41555241  # "AURA"
# A server that vanished without closing the connection (a partition, a dead host) fails a write in about
# 10 s instead of hanging the writer on the kernel's TCP retries for many minutes.
_LIVENESS = {"tcp_user_timeout": 10_000, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
             "keepalives_count": 2}  # fmt: skip


def _driver() -> ModuleType:
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        raise ConfigError(
            "--history postgresql:// needs the psycopg driver: pip install 'aura-monitor[postgres]'"
        ) from None


def redacted(url: str) -> str:
    """The URL with its password replaced by ***, for logs and /readyz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresStore(SQLStore):
    """HistoryStore on a PostgreSQL database; rows carry the node, so sidecars never write each other's rows."""

    placeholder = "%s"
    begin = "BEGIN"
    migration_lock = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
    outage_hint = (
        "check that the PostgreSQL server is up and reachable from this node (pg_isready -h <host> -p <port>), "
        "and the URL's database, user and password"
    )

    def __init__(self, url: str) -> None:
        super().__init__()
        self.psycopg = _driver()
        self.url = url
        self.description = redacted(url)
        self.errors = (self.psycopg.Error,)

    def _connect(self) -> Any:
        return self.psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **_LIVENESS)

    def _translate(self, exc: Exception) -> StoreUnavailable:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return StoreUnavailable(f"history database {self.description}: {text}")

    def _broken(self, exc: Exception) -> bool:
        # A lost server (restart, network) breaks the connection; a failed statement leaves it usable.
        return self._conn is None or bool(self._conn.closed) or isinstance(exc, self.psycopg.OperationalError)

    def move_aside(self) -> str | None:
        return None  # a server database is never "corrupt" in the SQLite sense: it is retried like an outage

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            with self.psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={READ_TIMEOUT_MS}", **_LIVENESS,
            ) as conn:  # fmt: skip
                return list(conn.execute(sql, tuple(params)).fetchall())
        except self.psycopg.errors.UndefinedTable:
            return []  # the first sidecar is still migrating: nothing written yet
        except self.psycopg.Error as exc:
            raise self._translate(exc) from None
