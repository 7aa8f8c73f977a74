"""Which history backend a --history URL names, and where the default one lives."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..exceptions import ConfigError
from .sqlite import SQLiteStore
from .store import HistoryStore


def default_url(settings: Settings) -> str:
    return f"sqlite:///{settings.resolved_state_dir / 'history.db'}"


def open_store(settings: Settings) -> HistoryStore:
    """The store for --history (default: history.db in the state dir); ConfigError for what cannot work."""
    url = settings.history or default_url(settings)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path.cwd() / path
        jobs = settings.jobs_dir.absolute()
        if path.absolute().is_relative_to(jobs):
            raise ConfigError(
                f"--history {url} lies inside the jobs dir {jobs}: Aura owns that tree; use --state-dir elsewhere"
            )
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # lazily: only PostgreSQL users need psycopg

        return PostgresStore(url)
    raise ConfigError(
        f"--history {url!r}: expected sqlite:///<file> (relative), sqlite:////<absolute path> or"
        " postgresql://user:password@host:5432/db, e.g. sqlite:////var/lib/aura-monitor/history.db"
    )
